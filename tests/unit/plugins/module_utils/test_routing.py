"""The gateway's routing table (_routing): backends per model, the cloud provider each data class
may reach, the HAProxy maps, backend names, and errors that name their variable."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.filter.routing import FilterModule
from ansible_collections.onprem.llm.plugins.module_utils._routing import (
    RoutingInputError,
    backend_name,
    route_maps,
    routing_table,
)

CLOUD_KEY = "sk-cloud-0123456789abcdef"
CA_FILE = "/etc/ssl/certs/ca-certificates.crt"
LLAMA = {"name": "llama-70b", "params_b": 70, "dtype": "bf16", "context_length": 8192}
SETTINGS = {"engine_model": LLAMA, "max_model_len": 8192}


def engine(name: str, port: int, model: str = "llama-70b", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "address": "10.20.1.11",
        "port": port,
        "model": model,
        "model_settings": SETTINGS,
        **extra,
    }


ENGINES = [engine("h200-a-1", 8001), engine("h200-a-0", 8000)]
CLASSES = {
    "restricted": {"cloud_regions": []},
    "internal": {"cloud_regions": ["westeurope", "eu-central-1"]},
    "public": {"cloud_regions": ["*"]},
}
PROVIDERS = {
    "openai": {"url": "https://api.openai.com/v1", "region": "us", "api_key": CLOUD_KEY},
    "azure-eu": {
        "url": "https://example-eu.openai.azure.com:8443/openai/v1/",
        "region": "westeurope",
        "api_key": CLOUD_KEY,
        "ca_file": "/etc/pki/azure-eu.pem",
    },
}
MODELS = {
    # Served on site; openai first, so public goes there, internal to the EU provider.
    "llama-70b": {"cloud": ["openai", "azure-eu"], "spill_over_queue": 32},
    # No engine serves it: cloud-only.
    "gpt-4.1": {"cloud": ["azure-eu"]},
}
TENANTS = ["team-support", "team-a"]
TENANT_MODELS = {"team-support": ["gpt-4.1"]}
RATE_LIMITS = {"team-a": {"llama-70b": 100}, "*": {"gpt-4.1": 10}}


def table(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "engines": ENGINES,
        "data_classes": CLASSES,
        "default_class": "restricted",
        "providers": PROVIDERS,
        "models": MODELS,
        "tenant_models": TENANT_MODELS,
        "tenants": TENANTS,
        "model_rate_limits": RATE_LIMITS,
        "ca_file": CA_FILE,
    }
    args.update(overrides)
    return routing_table(**args)


def errors(**overrides: Any) -> list[str]:
    with pytest.raises(RoutingInputError) as raised:
        table(**overrides)
    return str(raised.value).splitlines()


# The table


def test_a_served_model_gets_one_backend_of_its_engines_and_may_spill_over():
    llama = table()["models"]["llama-70b"]
    assert llama["backend"] == "model_llama-70b"
    assert [server["name"] for server in llama["servers"]] == ["h200-a-0", "h200-a-1"]
    assert llama["servers"][0] == engine("h200-a-0", 8000)
    assert llama["cloud"] == ["openai", "azure-eu"]
    assert llama["spill_over_queue"] == 32
    # The first provider of the model's list whose region the class allows; restricted never.
    assert llama["classes"] == {"internal": "azure-eu", "public": "openai"}


def test_a_model_no_engine_serves_is_cloud_only():
    gpt = table()["models"]["gpt-4.1"]
    assert gpt["backend"] is None
    assert gpt["servers"] == []
    assert gpt["spill_over_queue"] is None
    assert gpt["classes"] == {"internal": "azure-eu", "public": "azure-eu"}


def test_the_table_lists_providers_classes_tenants_and_limits():
    result = table()
    assert sorted(result["models"]) == ["gpt-4.1", "llama-70b"]
    assert result["providers"] == {
        "azure-eu": {
            "name": "azure-eu",
            "backend": "cloud_azure-eu",
            "host": "example-eu.openai.azure.com",
            "port": 8443,
            "path": "/openai/v1",
            "region": "westeurope",
            "ca_file": "/etc/pki/azure-eu.pem",
            "route": "cloud:azure-eu",
        },
        "openai": {
            "name": "openai",
            "backend": "cloud_openai",
            "host": "api.openai.com",
            "port": 443,
            "path": "/v1",
            "region": "us",
            "ca_file": CA_FILE,
            "route": "cloud:openai",
        },
    }
    assert result["classes"] == {
        "restricted": [],
        "internal": ["westeurope", "eu-central-1"],
        "public": ["*"],
    }
    assert result["default_class"] == "restricted"
    # A tenant not in haproxy_tenant_models may use every model.
    assert result["tenant_models"] == {
        "team-a": ["gpt-4.1", "llama-70b"],
        "team-support": ["gpt-4.1"],
    }
    assert result["model_rate_limits"] == {"team-a|llama-70b": 100, "*|gpt-4.1": 10}
    # Provider keys stay out of the table (and so out of the maps).
    assert CLOUD_KEY not in json.dumps(result)


@pytest.mark.parametrize(
    ("policy", "classes"),
    [
        # The list's order decides: public ("*") takes the first provider.
        ({"cloud": ["azure-eu", "openai"]}, {"internal": "azure-eu", "public": "azure-eu"}),
        ({"cloud": ["openai", "azure-eu"]}, {"internal": "azure-eu", "public": "openai"}),
        # A provider outside internal's regions: only public may use it.
        ({"cloud": ["openai"]}, {"public": "openai"}),
        # data_classes narrows the classes that may leave.
        ({"cloud": ["openai", "azure-eu"], "data_classes": ["internal"]}, {"internal": "azure-eu"}),
        # On site only.
        ({}, {}),
    ],
)
def test_each_class_gets_the_first_provider_its_regions_allow(policy: dict, classes: dict):
    result = table(models={"llama-70b": policy}, tenant_models={}, model_rate_limits={})
    assert result["models"]["llama-70b"]["classes"] == classes


def test_restricted_never_leaves_even_when_a_model_names_every_class():
    all_classes = {"cloud": ["openai"], "data_classes": ["restricted", "public"]}
    [message] = errors(models={"llama-70b": all_classes}, tenant_models={}, model_rate_limits={})
    assert message.startswith(
        "haproxy_models.llama-70b.data_classes: class restricted may reach only regions "
        "none (on premises only)"
    )


def test_two_hosts_serving_one_model_the_same_way_share_its_backend():
    engines = [*ENGINES, {**engine("h200-b-0", 8000), "address": "10.20.1.12"}]
    llama = table(engines=engines)["models"]["llama-70b"]
    assert [server["name"] for server in llama["servers"]] == ["h200-a-0", "h200-a-1", "h200-b-0"]


def test_engines_without_a_routing_entry_are_routed_on_site_only():
    result = table(models={}, tenant_models={}, model_rate_limits={})
    assert list(result["models"]) == ["llama-70b"]
    assert result["models"]["llama-70b"]["cloud"] == []
    assert result["models"]["llama-70b"]["classes"] == {}


# The maps


def test_route_maps_line_by_line():
    maps = route_maps(table())
    assert sorted(maps) == [
        "model_access.map",
        "model_clouds.map",
        "model_rate_limits.map",
        "model_spill.map",
        "models.map",
        "models_list.map",
    ]
    assert maps["models.map"].splitlines() == [
        "gpt-4.1 cloud-only",
        "llama-70b model_llama-70b",
    ]
    assert maps["model_access.map"].splitlines() == [
        "team-a|gpt-4.1 1",
        "team-a|llama-70b 1",
        "team-support|gpt-4.1 1",
    ]
    assert maps["model_clouds.map"].splitlines() == [
        "gpt-4.1|internal cloud_azure-eu",
        "gpt-4.1|public cloud_azure-eu",
        "llama-70b|internal cloud_azure-eu",
        "llama-70b|public cloud_openai",
    ]
    assert maps["model_spill.map"].splitlines() == ["llama-70b 32"]
    assert maps["model_rate_limits.map"].splitlines() == [
        "*|gpt-4.1 10",
        "team-a|llama-70b 100",
    ]
    for name, content in maps.items():
        assert content.endswith("\n"), name
        assert CLOUD_KEY not in content, name


def test_models_list_map_gives_each_tenant_its_models_as_openai_lists_them():
    lines = route_maps(table())["models_list.map"].splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["team-a", "team-support"]
    lists = {tenant: json.loads(body) for tenant, body in (line.split(" ", 1) for line in lines)}
    assert lists["team-support"] == {
        "object": "list",
        "data": [{"id": "gpt-4.1", "object": "model", "created": 0, "owned_by": "cloud"}],
    }
    assert lists["team-a"] == {
        "object": "list",
        "data": [
            {"id": "gpt-4.1", "object": "model", "created": 0, "owned_by": "cloud"},
            {"id": "llama-70b", "object": "model", "created": 0, "owned_by": "on-premises"},
        ],
    }
    # One line per tenant: the JSON holds no whitespace a map line would split on.
    assert all(" " not in body for _tenant, body in (line.split(" ", 1) for line in lines))


def test_maps_without_spill_over_or_limits_are_empty():
    maps = route_maps(table(models={}, tenant_models={}, model_rate_limits={}))
    assert maps["model_spill.map"] == ""
    assert maps["model_rate_limits.map"] == ""
    assert maps["model_clouds.map"] == ""
    assert maps["models.map"] == "llama-70b model_llama-70b\n"


def test_the_filter_adds_the_maps_and_fails_naming_the_variable():
    gateway_routes = FilterModule().filters()["gateway_routes"]
    result = gateway_routes(
        ENGINES, CLASSES, "restricted", PROVIDERS, MODELS, TENANT_MODELS, TENANTS, RATE_LIMITS
    )
    assert result["maps"] == route_maps(table())
    with pytest.raises(AnsibleFilterError, match=r"^gateway_routes: haproxy_default_data_class"):
        gateway_routes(ENGINES, CLASSES, "secret", PROVIDERS, MODELS, {}, TENANTS)


# Backend names


@pytest.mark.parametrize("model", ["llama-3.1-70b", "Qwen2.5-72B-Instruct", "bge_m3", "a.b"])
def test_plain_model_names_are_kept(model: str):
    assert backend_name(model) == f"model_{model}"


@pytest.mark.parametrize(
    ("model", "slug"),
    [
        ("meta-llama/Llama-3.1-8B", "meta-llama-Llama-3.1-8B"),
        ("my model", "my-model"),
        ("org/model", "org-model"),
    ],
)
def test_other_names_get_a_slug_and_a_hash(model: str, slug: str):
    digest = hashlib.sha256(model.encode()).hexdigest()[:8]
    assert backend_name(model) == f"model_{slug}-{digest}"
    assert re.fullmatch(r"model_[A-Za-z0-9._-]+", backend_name(model))


def test_names_differing_only_by_slash_or_dash_get_different_backends():
    assert backend_name("org/model") != backend_name("org-model")
    assert backend_name("org-model") == "model_org-model"
    engines = [engine("a-0", 8000, "org/model"), engine("b-0", 8001, "org-model")]
    result = table(engines=engines, models={}, tenant_models={}, model_rate_limits={})
    backends = {name: entry["backend"] for name, entry in result["models"].items()}
    assert backends == {"org-model": "model_org-model", "org/model": backend_name("org/model")}


def test_long_names_are_cut_and_stay_distinct():
    a, b = "x" * 100 + "a", "x" * 100 + "b"
    assert backend_name(a) != backend_name(b)
    assert len(backend_name(a)) == len("model_") + 60 + 1 + 8


# Errors: every line names its variable


VARIABLE = re.compile(
    r"^(haproxy_(data_classes|default_data_class|cloud_providers|models|tenant_models|"
    r"model_rate_limits|engines)|engine_model|engine_served_model_name)[.: ]"
)

BAD = {
    "model no engine serves and no provider lists": (
        {"models": {**MODELS, "mistral": {"cloud": []}}},
        "haproxy_models.mistral: no engine serves 'mistral' and it names no cloud provider",
    ),
    "undeclared provider": (
        {"models": {"llama-70b": {"cloud": ["bedrock"]}}},
        "haproxy_models.llama-70b.cloud: bedrock not in haproxy_cloud_providers (openai, azure-eu)",
    ),
    "undeclared data class": (
        {"models": {"llama-70b": {"cloud": ["openai"], "data_classes": ["secret"]}}},
        "haproxy_models.llama-70b.data_classes: secret not declared in haproxy_data_classes",
    ),
    "provider URL without TLS": (
        {"providers": {**PROVIDERS, "openai": {**PROVIDERS["openai"], "url": "http://x.io/v1"}}},
        "haproxy_cloud_providers.openai.url: expected an https:// URL",
    ),
    "provider without a key": (
        {"providers": {**PROVIDERS, "openai": {**PROVIDERS["openai"], "api_key": ""}}},
        "haproxy_cloud_providers.openai.api_key: expected the provider's API key",
    ),
    "provider with the any-region wildcard": (
        {"providers": {**PROVIDERS, "openai": {**PROVIDERS["openai"], "region": "*"}}},
        "haproxy_cloud_providers.openai.region: expected the provider's region name",
    ),
    "provider with an unknown field": (
        {"providers": {**PROVIDERS, "openai": {**PROVIDERS["openai"], "model": "gpt"}}},
        "haproxy_cloud_providers.openai: expected {url, region, api_key, ca_file?}",
    ),
    "tenant allowed an unknown model": (
        {"tenant_models": {"team-support": ["gpt-9"]}},
        "haproxy_tenant_models.team-support: gpt-9 is neither served by an engine nor a cloud",
    ),
    "tenant models for a tenant without a key": (
        {"tenant_models": {"team-x": ["gpt-4.1"]}},
        "haproxy_tenant_models.team-x: no tenant 'team-x' in haproxy_api_keys",
    ),
    "spill-over threshold of 0": (
        {"models": {**MODELS, "llama-70b": {"cloud": ["openai"], "spill_over_queue": 0}}},
        "haproxy_models.llama-70b.spill_over_queue: expected a whole number of queued requests",
    ),
    "spill-over of a cloud-only model": (
        {"models": {**MODELS, "gpt-4.1": {"cloud": ["openai"], "spill_over_queue": 4}}},
        "haproxy_models.gpt-4.1.spill_over_queue: spill-over needs both engines",
    ),
    "provider region no class of the model allows": (
        {"models": {**MODELS, "llama-70b": {"cloud": ["openai"], "data_classes": ["internal"]}}},
        "haproxy_models.llama-70b.data_classes: class internal may reach only regions "
        "['westeurope', 'eu-central-1'], and none of its providers (openai in us) is there",
    ),
    "provider region no class allows": (
        {"data_classes": {"restricted": {"cloud_regions": []}}, "tenant_models": {}},
        "haproxy_models.gpt-4.1.cloud: no data class may reach the region of azure-eu (westeurope)",
    ),
    "default class not declared": (
        {"default_class": "secret"},
        "haproxy_default_data_class: 'secret' is not a class of haproxy_data_classes "
        "(restricted, internal, public)",
    ),
    "restricted may reach a region": (
        {"data_classes": {**CLASSES, "restricted": {"cloud_regions": ["westeurope"]}}},
        "haproxy_data_classes.restricted: restricted data never leaves the site",
    ),
    "class with a bad name": (
        {"data_classes": {**CLASSES, "Top Secret": {"cloud_regions": []}}},
        "haproxy_data_classes.Top Secret: a class name is lowercase letters",
    ),
    "model name with whitespace": (
        {"models": {**MODELS, "gpt 4": {"cloud": ["openai"]}}},
        "haproxy_models.gpt 4: a model name may not hold whitespace",
    ),
    "served name with whitespace": (
        {"engines": [engine("a-0", 8000, "llama 70b")], "models": {}, "tenant_models": {}},
        "engine_served_model_name: 'llama 70b' (served by a-0) may not hold whitespace",
    ),
    "rate limit for an unknown tenant": (
        {"model_rate_limits": {"team-x": {"llama-70b": 5}}},
        "haproxy_model_rate_limits.team-x: no tenant 'team-x' in haproxy_api_keys",
    ),
    "rate limit for an unknown model": (
        {"model_rate_limits": {"*": {"gpt-9": 5}}},
        "haproxy_model_rate_limits.*.gpt-9: no such model",
    ),
    "rate limit of 0": (
        {"model_rate_limits": {"team-a": {"llama-70b": 0}}},
        "haproxy_model_rate_limits.team-a.llama-70b: expected a positive whole number, got 0",
    ),
    "engine without its model": (
        {"engines": [{"name": "a-0", "address": "10.0.0.1", "port": 8000}]},
        "haproxy_engines: every instance needs the model it serves",
    ),
    "one served name, two models": (
        {
            "engines": [
                *ENGINES,
                engine("h200-b-0", 8000, model_settings={**SETTINGS, "max_model_len": 32768}),
            ]
        },
        "engine_model: hosts h200-a-0, h200-a-1, h200-b-0 serve different models (or context "
        "lengths) under one name 'llama-70b'",
    ),
    "one served name, two dtypes": (
        {
            "engines": [
                *ENGINES,
                engine(
                    "h200-b-0",
                    8000,
                    model_settings={**SETTINGS, "engine_model": {**LLAMA, "dtype": "fp8"}},
                ),
            ]
        },
        "serve different models (or context lengths) under one name 'llama-70b'",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_its_variable(case: str):
    overrides, expected = BAD[case]
    found = errors(**overrides)
    assert any(expected in line for line in found), found
    for line in found:
        assert VARIABLE.match(line), line
        assert CLOUD_KEY not in line


def test_every_problem_is_listed_one_per_line():
    found = errors(
        default_class="secret",
        providers={**PROVIDERS, "openai": {**PROVIDERS["openai"], "url": "http://x.io"}},
        models={**MODELS, "mistral": {}},
        tenant_models={"team-x": ["gpt-4.1"]},
        model_rate_limits={"team-y": {}},
    )
    assert [line.split(":", 1)[0] for line in found] == [
        "haproxy_default_data_class",
        "haproxy_cloud_providers.openai.url",
        # llama-70b names openai, which is not usable: refused as unknown.
        "haproxy_models.llama-70b.cloud",
        "haproxy_models.mistral",
        "haproxy_tenant_models.team-x",
        "haproxy_model_rate_limits.team-y",
    ]


@pytest.mark.parametrize("providers", [{"openai": CLOUD_KEY}, [{"api_key": CLOUD_KEY}]])
def test_providers_of_the_wrong_shape_are_refused_without_showing_a_key(providers: Any):
    found = errors(providers=providers, models={}, tenant_models={}, model_rate_limits={})
    assert found and all(line.startswith("haproxy_cloud_providers") for line in found), found
    assert all(CLOUD_KEY not in line for line in found)
