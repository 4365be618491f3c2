"""Bad gateway input fails in the validation play, before any host is touched, naming the variable.

Runs playbooks/validate_input.yml controller-side only against a throwaway inventory whose hosts
do not exist; the gateway host gets the pki and haproxy preflights. Routing input (models, data
classes, cloud providers, tenants' models) is checked by the same play; where the engines'
models matter, the inventory has engine_nodes hosts and the gateway computes its backends from
their variables, as in a site.
"""

from __future__ import annotations

import datetime

import pytest
from validation_errors import assert_each_host_reports_its_case, one_host_per_case

KEY = "sk-test-0123456789abcdef0123456789abcdef"
CLOUD_KEY = "sk-cloud-test-5f2b9c0e"
DIGEST = "sha256:" + "ab" * 32

OPENAI = {"url": "https://api.example.com/v1", "region": "us", "api_key": CLOUD_KEY}
AZURE_EU = {
    "url": "https://example-eu.openai.azure.com/openai/v1",
    "region": "westeurope",
    "api_key": CLOUD_KEY,
}
CLASSES = {
    "restricted": {"cloud_regions": []},
    "internal": {"cloud_regions": ["westeurope"]},
    "public": {"cloud_regions": ["*"]},
}

GOOD_VARS = {
    "haproxy_api_keys": {"team-a": KEY},
    "haproxy_rate_limits": {"team-a": 100},
    "haproxy_engines": [
        {"name": "h200-node-01-0", "address": "10.20.1.11", "port": 8000, "model": "llama"},
        {"name": "h200-node-01-1", "address": "10.20.1.11", "port": 8001, "model": "llama"},
    ],
    "haproxy_cloud_providers": {"openai": OPENAI},
    # llama: on-site, public requests fail over to openai; gpt-4.1: cloud-only.
    "haproxy_models": {"llama": {"cloud": ["openai"]}, "gpt-4.1": {"cloud": ["openai"]}},
    "haproxy_tenant_models": {"team-a": ["llama", "gpt-4.1"]},
}


def inventory(host_vars: dict) -> dict:
    return {
        "all": {
            "children": {
                "gateways": {"hosts": {"gateway-1": host_vars}},
                "monitoring": {"hosts": {"monitoring-1": {}}},
            }
        }
    }


def test_numbers_given_as_extra_variable_strings_pass(validate_input):
    # `-e pki_certificate_days=400` gives strings, as a forced renewal is asked for.
    lifetimes = {"pki_certificate_days": "400", "pki_renew_before_days": "380"}
    result = validate_input(inventory({**GOOD_VARS, **lifetimes, "haproxy_retries": "2"}))
    assert result.returncode == 0, result.stdout + result.stderr


def test_good_input_passes(validate_input):
    result = validate_input(inventory(GOOD_VARS))
    assert result.returncode == 0, result.stdout + result.stderr
    # Keys never appear in the output.
    assert KEY not in result.stdout + result.stderr
    assert CLOUD_KEY not in result.stdout + result.stderr


def test_vault_references_are_not_needed_to_validate(validate_input):
    # As in inventories/prod: the keys reference the vault, which validation may not have.
    provider_key = "{{ vault_haproxy_cloud_provider_keys['openai'] }}"
    result = validate_input(
        inventory(
            {
                **GOOD_VARS,
                "haproxy_api_keys": "{{ vault_haproxy_api_keys }}",
                "haproxy_cloud_providers": {"openai": {**OPENAI, "api_key": provider_key}},
                "haproxy_rate_limits": {},
            }
        )
    )
    assert result.returncode == 0, result.stdout + result.stderr


BAD_INPUT = {
    "API key too short": (
        {"haproxy_api_keys": {"team-a": "sk-short"}},
        ["haproxy_api_keys.team-a", "expected at least 32"],
    ),
    "user-supplied certificate mode without files": (
        {"pki_mode": "provided"},
        ["pki_provided_certificate", "pki_provided_private_key"],
    ),
    "empty data-class header name": (
        {"haproxy_data_class_header": ""},
        ["haproxy_data_class_header", "HTTP header names"],
    ),
    "duplicate engine names": (
        {
            "haproxy_engines": [
                {"name": "node-1", "address": "10.20.1.11", "port": 8000, "model": "llama"},
                {"name": "node-1", "address": "10.20.1.12", "port": 8000, "model": "llama"},
            ]
        },
        ["haproxy_engines", "duplicate names: ['node-1']"],
    ),
    "two engines on one address and port": (
        {
            "haproxy_engines": [
                {"name": "node-1-a", "address": "10.20.1.11", "port": 8000, "model": "llama"},
                {"name": "node-1-b", "address": "10.20.1.11", "port": 8000, "model": "llama"},
            ]
        },
        ["haproxy_engines", "duplicate address:port: ['10.20.1.11:8000']"],
    ),
    "engine without the model it serves": (
        {"haproxy_engines": [{"name": "node-1", "address": "10.20.1.11", "port": 8000}]},
        ["missing required arguments: model found in haproxy_engines"],
    ),
    "unknown balance mode": (
        {"haproxy_balance": "roundrobin"},
        ["haproxy_balance", "leastconn, session_hash"],
    ),
    "rate limit not a positive integer": (
        {"haproxy_rate_limits": {"team-a": 0}},
        ["haproxy_rate_limits", "positive"],
    ),
    "default rate limit not a number": (
        {"haproxy_rate_limit_requests": "many"},
        ["haproxy_rate_limit_requests", "int"],
    ),
    "TLS below 1.2": (
        {"haproxy_tls_min_version": "TLSv1.1"},
        ["haproxy_tls_min_version", "TLSv1.2, TLSv1.3"],
    ),
    "timeout that is not a duration": (
        {"haproxy_timeout_server": "ten minutes"},
        ["haproxy_timeout_server", "durations"],
    ),
    "rate limit for a tenant without a key": (
        {"haproxy_rate_limits": {"team-b": 10}},
        ["haproxy_rate_limits names tenants without an API key", "team-b"],
    ),
    "engine port out of range": (
        {"haproxy_engines": [{"name": "n", "address": "10.20.1.11", "port": 70000, "model": "m"}]},
        ["haproxy_engines", "1-65535"],
    ),
    "stats network that does not parse": (
        {"haproxy_stats_allowed_networks": ["10.0.0.0/33"]},
        ["haproxy_stats_allowed_networks[0]", "not a CIDR network"],
    ),
    # Routing: models, data classes, cloud providers, tenants' models.
    "route to a model no engine serves and no provider lists": (
        {"haproxy_models": {**GOOD_VARS["haproxy_models"], "mistral-large": {"cloud": []}}},
        ["haproxy_models.mistral-large: no engine serves 'mistral-large'", "names no cloud"],
    ),
    "route with a data class that is not declared": (
        {"haproxy_models": {"llama": {"cloud": ["openai"], "data_classes": ["confidential"]}}},
        [
            "haproxy_models.llama.data_classes: confidential not declared in "
            "haproxy_data_classes (restricted, public)"
        ],
    ),
    "provider URL without TLS": (
        {"haproxy_cloud_providers": {"openai": {**OPENAI, "url": "http://api.example.com/v1"}}},
        ["haproxy_cloud_providers.openai.url: expected an https:// URL", "'http://api.example"],
    ),
    "provider URL that is not http(s)": (
        {"haproxy_cloud_providers": {"openai": {**OPENAI, "url": "ftp://api.example.com"}}},
        ["haproxy_cloud_providers.openai.url: expected an https:// URL"],
    ),
    "provider without a key": (
        {"haproxy_cloud_providers": {"openai": {**OPENAI, "api_key": ""}}},
        ["haproxy_cloud_providers.openai.api_key: expected the provider's API key"],
    ),
    "tenant allowed a model that does not exist": (
        {"haproxy_tenant_models": {"team-a": ["llama", "gpt-9"]}},
        ["haproxy_tenant_models.team-a: gpt-9 is neither served by an engine nor a cloud model"],
    ),
    "spill-over threshold of 0": (
        {"haproxy_models": {"llama": {"cloud": ["openai"], "spill_over_queue": 0}}},
        ["haproxy_models.llama.spill_over_queue", "at least 1", "got 0"],
    ),
    "provider region no class of the model allows": (
        {
            "haproxy_data_classes": CLASSES,
            "haproxy_models": {"llama": {"cloud": ["openai"], "data_classes": ["internal"]}},
        },
        [
            "haproxy_models.llama.data_classes: class internal may reach only regions "
            "['westeurope']",
            "openai in us",
        ],
    ),
    "provider region no class allows": (
        {
            "haproxy_data_classes": {"restricted": {"cloud_regions": []}},
            "haproxy_models": {"llama": {"cloud": ["openai"]}},
        },
        ["haproxy_models.llama.cloud: no data class may reach the region of openai (us)"],
    ),
    "default data class not declared": (
        {"haproxy_default_data_class": "confidential"},
        [
            "haproxy_default_data_class: 'confidential' is not a class of haproxy_data_classes "
            "(restricted, public)"
        ],
    ),
    "restricted data class allowed off-site": (
        {
            "haproxy_data_classes": {
                **CLASSES,
                "restricted": {"cloud_regions": ["westeurope"]},
            }
        },
        ["haproxy_data_classes.restricted: restricted data never leaves the site"],
    ),
    "replaced cloud backup variable": (
        {"haproxy_cloud_backup_url": "https://api.example.com/v1"},
        ["haproxy_cloud_backup_url: replaced by haproxy_cloud_providers"],
    ),
    "model name with whitespace": (
        {"haproxy_models": {"llama 3": {"cloud": ["openai"]}}},
        ["haproxy_models.llama 3: a model name may not hold whitespace"],
    ),
    "model rate limit for an unknown tenant": (
        {"haproxy_model_rate_limits": {"team-b": {"llama": 10}}},
        ["haproxy_model_rate_limits.team-b: no tenant 'team-b' in haproxy_api_keys"],
    ),
    "route to a provider that is not declared": (
        {"haproxy_models": {"llama": {"cloud": ["anthropic"]}}},
        ["haproxy_models.llama.cloud: anthropic not in haproxy_cloud_providers (openai)"],
    ),
    "a curve outside the intermediate profile": (
        {"haproxy_tls_curves": ["X25519", "P-521", "X448"]},
        ["haproxy_tls_curves must be some of X25519, P-256, P-384", "['P-521', 'X448']"],
    ),
    "CBC and RSA key exchange suites": (
        {
            "haproxy_tls_ciphers": (
                "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-SHA:AES256-GCM-SHA384"
            )
        },
        [
            "haproxy_tls_ciphers must list TLS 1.2 suites with forward secrecy and AEAD",
            "['ECDHE-RSA-AES128-SHA', 'AES256-GCM-SHA384']",
        ],
    ),
    "negative HSTS max-age": (
        {"haproxy_hsts_max_age": -1},
        ["haproxy_hsts_max_age must be 0 (off) or more seconds; got -1"],
    ),
    "client certificates for a tenant without a key": (
        {"haproxy_client_certificate_tenants": {"team-x": ["batch.team-x.example"]}},
        ["haproxy_client_certificate_tenants names tenants without an API key", "team-x"],
    ),
    "a client certificate name with a space": (
        {"haproxy_client_certificate_tenants": {"team-a": ["Batch Job"]}},
        ["haproxy_client_certificate_tenants['team-a'] has names that are no certificate", "Batch"],
    ),
    "a tenant with no client certificate name": (
        {"haproxy_client_certificate_tenants": {"team-a": []}},
        ["haproxy_client_certificate_tenants['team-a'] must be a non-empty list"],
    ),
    "a relative client CA": (
        {
            "haproxy_client_certificate_tenants": {"team-a": ["batch.team-a.example"]},
            "haproxy_client_ca_file": "ca.crt",
        },
        ["haproxy_client_ca_file must be the absolute path of the CA"],
    ),
}


def test_every_bad_input_is_reported_in_one_run(validate_input, assert_rejected):
    """One gateway per case, as an inventory with many mistakes is reported in one pass."""
    site = inventory({})
    site["all"]["children"]["gateways"]["hosts"] = one_host_per_case(
        BAD_INPUT, "gateway-", GOOD_VARS
    )
    result = validate_input(site)
    output = assert_rejected(result, [], "several bad gateways")
    assert_each_host_reports_its_case(output, BAD_INPUT, "gateway-")
    assert KEY not in output
    assert CLOUD_KEY not in output


# Engine hosts, in two groups, whose models the gateway's backends come from (haproxy_engines
# left at its default). Production mode: a pinned image and a checked model download.
ENGINE_VARS = {
    "nvidia_driver_profile": "h200_hgx",
    "engine_mode": "container",
    "engine_container_image": f"registry.example.internal/vllm/vllm-openai@{DIGEST}",
    "engine_model_source": {
        "type": "url",
        "url": "https://mirror.example.internal/models/model.tar.gz",
        "sha256": "cd" * 32,
    },
}
LLAMA_70B = {"name": "llama-3.1-70b", "params_b": 70, "dtype": "bf16", "context_length": 8192}
LLAMA_8B = {"name": "llama-3.1-8b", "params_b": 8, "dtype": "bf16", "context_length": 8192}


def site_inventory(model_a: dict, model_b: dict, gateway_vars: dict) -> dict:
    """hgx_a (h200-node-01) serves model_a, hgx_b (h200-node-02) model_b."""
    return {
        "all": {
            "children": {
                "engine_nodes": {
                    "children": {
                        "hgx_a": {
                            "hosts": {"h200-node-01": {"ansible_host": "10.20.1.11"}},
                            "vars": {**ENGINE_VARS, "engine_model": model_a},
                        },
                        "hgx_b": {
                            "hosts": {"h200-node-02": {"ansible_host": "10.20.1.12"}},
                            "vars": {**ENGINE_VARS, "engine_model": model_b},
                        },
                    }
                },
                "gateways": {"hosts": {"gateway-1": gateway_vars}},
            }
        }
    }


def test_a_multi_model_routing_config_passes(validate_input):
    gateway = {
        "haproxy_api_keys": {"team-a": KEY, "team-support": KEY[::-1]},
        "haproxy_data_classes": CLASSES,
        "haproxy_default_data_class": "restricted",
        "haproxy_cloud_providers": {"azure-eu": AZURE_EU, "openai": OPENAI},
        "haproxy_models": {
            # On-site; internal requests spill to Azure EU, public ones too (first provider
            # their regions allow), when more than 32 wait or no engine is up.
            "llama-3.1-70b": {"cloud": ["azure-eu", "openai"], "spill_over_queue": 32},
            # On-site, public requests only may fail over, to openai.
            "llama-3.1-8b": {"cloud": ["openai"], "data_classes": ["public"]},
            # Cloud-only.
            "gpt-4.1": {"cloud": ["azure-eu"]},
            "gpt-5": {"cloud": ["openai"]},
        },
        "haproxy_tenant_models": {"team-support": ["llama-3.1-8b", "gpt-4.1"]},
        "haproxy_model_rate_limits": {"*": {"gpt-5": 10}, "team-a": {"llama-3.1-70b": 100}},
    }
    result = validate_input(site_inventory(LLAMA_70B, LLAMA_8B, gateway))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert KEY not in output
    assert CLOUD_KEY not in output


@pytest.mark.parametrize(
    "difference",
    [{"dtype": "fp8"}, {"context_length": 32768}],
    ids=["dtype", "context_length"],
)
def test_one_served_name_for_two_different_models_is_rejected(
    validate_input, assert_rejected, difference
):
    gateway = {"haproxy_api_keys": {"team-a": KEY}}
    result = validate_input(site_inventory(LLAMA_70B, {**LLAMA_70B, **difference}, gateway))
    assert_rejected(
        result,
        [
            "engine_model: hosts h200-node-01",
            "h200-node-02",
            "serve different models (or context lengths) under one name 'llama-3.1-70b'",
            "engine_served_model_name",
        ],
        f"served name shared across {difference}",
    )


@pytest.fixture(scope="module")
def provided_certificates(tmp_path_factory: pytest.TempPathFactory, certificates) -> dict[str, str]:
    """A CA, a gateway certificate for 10.20.0.11 signed by it, one that expired, one for
    another host, and the key: files on the controller (generated here)."""
    directory = tmp_path_factory.mktemp("provided")
    ca = certificates.issue("corporate CA", ca=True)
    good, key = certificates.issue("gateway-1", issuer=ca, ips=("10.20.0.11",))
    other = certificates.issue("gateway-1", issuer=ca, ips=("10.20.0.99",))[0]
    expired = certificates.issue(
        "gateway-1",
        issuer=ca,
        ips=("10.20.0.11",),
        not_before=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC),
        not_after=datetime.datetime(2025, 2, 1, tzinfo=datetime.UTC),
    )[0]
    files = {"ca.crt": ca[0], "good.crt": good, "other.crt": other, "expired.crt": expired,
             "server.key": key}  # fmt: skip
    return {name: str(certificates.write(directory / name, item)) for name, item in files.items()}


def provided(files: dict[str, str], certificate: str, ca: str | None = "ca.crt") -> dict:
    return {
        "ansible_host": "10.20.0.11",
        "pki_mode": "provided",
        "pki_provided_certificate": files[certificate],
        "pki_provided_private_key": files["server.key"],
        "pki_provided_ca_certificate": files[ca] if ca else "",
    }


def test_a_provided_certificate_for_the_host_passes(validate_input, provided_certificates):
    result = validate_input(inventory({**GOOD_VARS, **provided(provided_certificates, "good.crt")}))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("certificate", "ca", "expected"),
    [
        ("expired.crt", "ca.crt", "expired on 2025-02-01"),
        ("other.crt", "ca.crt", "does not name ['10.20.0.11']"),
        ("good.crt", None, "pki_provided_ca_certificate must name the CA chain"),
        ("good.crt", "missing", "is not a file on the controller"),
    ],
    ids=["expired", "wrong name", "no CA", "CA file missing"],
)
def test_a_bad_provided_certificate_is_rejected_before_any_host(
    validate_input, assert_rejected, provided_certificates, certificate, ca, expected
):
    files = {**provided_certificates, "missing": "/nonexistent/ca.crt"}
    result = validate_input(inventory({**GOOD_VARS, **provided(files, certificate, ca)}))
    assert_rejected(result, ["gateway-1: pki: pki_provided_", expected], expected)
