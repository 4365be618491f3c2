"""The roles' input rules, called directly on a host's variables (role defaults and vars under
the inventory's values, as in a play)."""

from __future__ import annotations

from pathlib import Path

import yaml
from ansible_collections.onprem.llm.plugins.plugin_utils import _input_rules as rules
from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import (
    HostVariables,
    layered,
)

ROLES = Path(__file__).resolve().parents[4] / "roles"
GROUPS = {
    "all": ["gw-1", "gw-2", "node-1", "tray-1", "mon-1"],
    "gateways": ["gw-1", "gw-2"],
    "gpu_nodes": ["node-1", "tray-1"],
    "nvl72_rack01": ["tray-1"],
    "monitoring": ["mon-1"],
}


def role_file(role: str, part: str) -> dict:
    path = ROLES / role / part / "main.yml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def host(role: str, name: str, **inventory: object) -> HostVariables:
    raw = layered(role_file(role, "defaults"), inventory, role_file(role, "vars"))
    return HostVariables(name, raw)


def messages(rule, v) -> list[str]:
    return list(rule(v, GROUPS))


def test_defaults_pass_every_rule_that_needs_no_templar():
    v = host("haproxy", "gw-1", haproxy_engines=[])
    for rule in rules.RULES["haproxy"]:
        assert messages(rule, v) == [], rule.__name__


def test_the_replaced_cloud_backup_variables_are_named_in_one_message():
    v = host(
        "haproxy",
        "gw-1",
        haproxy_engines=[],
        haproxy_cloud_backup_url="",
        haproxy_cloud_backup_models=["llama"],
    )
    [message] = messages(rules.haproxy_replaced_variables, v)
    assert message.startswith("haproxy_cloud_backup_url, haproxy_cloud_backup_models: replaced by")
    assert "haproxy_cloud_providers" in message
    assert "haproxy_models" in message


def test_the_routes_rule_gives_one_message_per_problem_each_naming_its_variable():
    engine = {"name": "n-0", "address": "10.0.0.1", "port": 8000, "model": "llama"}
    v = host(
        "haproxy",
        "gw-1",
        haproxy_engines=[engine],
        haproxy_default_data_class="secret",
        haproxy_tenant_models={"team-x": ["llama"]},
    )
    found = messages(rules.haproxy_routes, v)
    assert len(found) == 2, found
    assert found[0].startswith("haproxy_default_data_class: 'secret' is not a class")
    assert found[1].startswith("haproxy_tenant_models.team-x: no tenant 'team-x'")


def test_duplicate_engines_are_named():
    engines = [
        {"name": "node-1", "address": "10.20.1.11", "port": 8000},
        {"name": "node-1", "address": "10.20.1.11", "port": 8000},
        {"name": "bad name", "address": "10.20.1.12", "port": 70000},
    ]
    [message] = messages(rules.haproxy_engines, host("haproxy", "gw-1", haproxy_engines=engines))
    assert "Bad names: ['bad name']" in message
    assert "duplicate names: ['node-1']" in message
    assert "duplicate address:port: ['10.20.1.11:8000']" in message


def test_rate_limits_of_tenants_without_a_key():
    v = host(
        "haproxy",
        "gw-1",
        haproxy_api_keys={"team-a": "k" * 40},
        haproxy_rate_limits={"team-a": 5, "team-b": 5},
    )
    assert messages(rules.haproxy_rate_limit_tenants, v) == [
        "haproxy_rate_limits names tenants without an API key in haproxy_api_keys: team-b."
    ]


def test_routes_are_checked_without_the_vault():
    # As in inventories/prod: tenants' and providers' keys reference a vault not loaded here.
    models = {"llama": {"cloud": ["openai"]}, "gpt-4.1": {"cloud": ["openai"]}}
    provider = {"url": "https://api.example.com/v1", "region": "us"}
    inventory = {
        "haproxy_engines": [{"name": "n-0", "address": "10.0.0.1", "port": 8000, "model": "llama"}],
        "haproxy_api_keys": "{{ vault_haproxy_api_keys }}",
        "haproxy_cloud_providers": {
            "openai": {**provider, "api_key": "{{ vault_haproxy_cloud_provider_keys['openai'] }}"}
        },
        "haproxy_models": models,
        "haproxy_tenant_models": {"team-a": ["gpt-4.1"]},
        "haproxy_model_rate_limits": {"*": {"llama": 5}, "team-b": {"gpt-4.1": 5}},
    }
    v = host("haproxy", "gw-1", **inventory)
    assert not v.defined("haproxy_api_keys")
    assert not v.defined("haproxy_cloud_providers")
    assert messages(rules.haproxy_routes, v) == []
    # What does not depend on the vault is still checked.
    bad = {**models, "mistral": {"cloud": ["openai"], "spill_over_queue": 0}}
    v = host("haproxy", "gw-1", **{**inventory, "haproxy_models": bad})
    [message] = messages(rules.haproxy_routes, v)
    assert message.startswith("haproxy_models.mistral.spill_over_queue: ")
    # A provider without a key is refused, vault or not.
    without_key = {**inventory, "haproxy_cloud_providers": {"openai": provider}}
    found = messages(rules.haproxy_routes, host("haproxy", "gw-1", **without_key))
    assert found[0].startswith("haproxy_cloud_providers.openai.api_key: "), found


def test_api_keys_from_a_vault_that_is_not_loaded_are_not_checked():
    v = host("haproxy", "gw-1", haproxy_api_keys="{{ vault_haproxy_api_keys }}")
    assert messages(rules.haproxy_api_keys, v) == []
    assert messages(rules.haproxy_rate_limit_tenants, v) == []


def test_a_short_api_key_is_refused_without_showing_it():
    [message] = messages(
        rules.haproxy_api_keys, host("haproxy", "gw-1", haproxy_api_keys={"team-a": "sk-short"})
    )
    assert "haproxy_api_keys.team-a" in message
    assert "expected at least 32" in message
    assert "sk-short" not in message


def test_the_virtual_ip_group_must_hold_this_host_and_another():
    v = host("keepalived", "gw-1", keepalived_virtual_ipaddress="10.20.0.10/24")
    assert messages(rules.keepalived_group, v) == []
    [message] = messages(
        rules.keepalived_group, host("keepalived", "mon-1", keepalived_group="monitoring")
    )
    assert "keepalived_group 'monitoring'" in message
    assert "(mon-1)" in message
    assert "it has 1 host(s)" in message


def test_firewall_rules_of_every_allow_variable_are_checked_against_the_groups():
    v = host(
        "firewall",
        "node-1",
        firewall_allow_metrics=[{"name": "m", "port": 9100, "from_groups": ["monitorng"]}],
    )
    [message] = messages(rules.firewall, v)
    assert "firewall_allow_metrics[0].from_groups" in message
    assert "'monitorng' is not an inventory group" in message


def test_a_tray_must_be_in_its_rack_group():
    v = host(
        "nvidia_driver",
        "node-1",
        nvidia_driver_profile="gb200_nvl72",
        nvidia_driver_imex_rack_group="nvl72_rack01",
    )
    assert messages(rules.nvidia_driver_imex_rack, v) == [
        "nvidia_driver_imex_rack_group 'nvl72_rack01' does not contain node-1: "
        "a tray must be in its own rack's IMEX domain"
    ]


def test_engine_instances_need_known_gpus():
    v = host("engine", "node-1", nvidia_driver_profile="generic")
    [message] = messages(rules.engine_instances, v)
    assert message.startswith("engine_host_gpus: the host's GPUs are unknown")
    assert (
        messages(rules.engine_instances, host("engine", "node-1", nvidia_driver_profile="h200_hgx"))
        == []
    )


def test_bcrypt_hashes_are_required_and_passwords_never_shown():
    v = host(
        "dcgm",
        "node-1",
        dcgm_exporter_basic_auth_users={"prometheus": "s3cret-scrape"},
        dcgm_exporter_tls_cert_file="/etc/tls/c.crt",
        dcgm_exporter_tls_key_file="/etc/tls/c.key",
    )
    [message] = messages(rules.dcgm_exporter_password_hashes, v)
    assert "a user without one is refused" in message
    assert "s3cret-scrape" not in message
    assert messages(rules.dcgm_exporter_tls, v) == []


def test_the_dcgm_cuda_major_follows_the_toolkit():
    assert (
        messages(rules.dcgm_cuda_major, host("dcgm", "node-1", cuda_toolkit_version="12.8")) == []
    )
    [message] = messages(rules.dcgm_cuda_major, host("dcgm", "node-1", cuda_toolkit_version="11.8"))
    assert "and is '11'" in message
    [message] = messages(rules.dcgm_cuda_major, host("dcgm", "node-1", dcgm_cuda_major=11))
    assert "and is '11'" in message


def test_prometheus_thresholds_name_the_bound():
    v = host("prometheus", "mon-1", prometheus_alert_kv_cache_usage_ratio=90)
    assert messages(rules.prometheus_thresholds, v) == [
        "prometheus_alert_kv_cache_usage_ratio must be above 0 and at most 1, got 90."
    ]


def test_every_role_of_the_validation_play_has_rules():
    from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import ROLES as NAMES

    assert sorted(rules.RULES) == sorted(NAMES)


def test_the_pki_rule_names_only_what_is_wrong_and_its_value():
    assert messages(rules.pki_names_and_lifetimes, host("pki", "gw-1")) == []
    renew = host("pki", "gw-1", pki_renew_before_days="400")
    assert messages(rules.pki_names_and_lifetimes, renew) == [
        "pki_renew_before_days must be at least 0 and below pki_certificate_days (365) (got 400)."
    ]
    several = host(
        "pki",
        "gw-1",
        pki_subject_alt_names=["DNS:api.example.com", "api.example.com"],
        pki_certificate_days=4000,
        pki_certificate_path="certs/host.crt",
    )
    found = messages(rules.pki_names_and_lifetimes, several)
    assert found == [
        "pki_subject_alt_names entries must look like DNS:name, IP:address, URI:uri or "
        "email:address (got ['api.example.com']).",
        "pki_ca_days must be above pki_certificate_days (4000) (got 3650).",
        "pki_certificate_path must be an absolute path (got certs/host.crt).",
    ]
