"""One pass over the inventory: argument specs and rules per host and role, errors gathered."""

from __future__ import annotations

from pathlib import Path

import yaml
from ansible.errors import AnsibleError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_collections.onprem.llm.plugins.plugin_utils._input_check import (
    RoleSpec,
    check_hosts,
    check_role,
    report,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import (
    HostVariables,
    VariableError,
    layered,
    roles_for_host,
)

ROLES = Path(__file__).resolve().parents[4] / "roles"
BASELINE = ("firewall", "model_store", "node_exporter")


def role_file(role: str, part: str) -> dict:
    return yaml.safe_load((ROLES / role / part / "main.yml").read_text()) or {}


def spec(role: str) -> RoleSpec:
    specs = yaml.safe_load((ROLES / role / "meta" / "argument_specs.yml").read_text())
    return RoleSpec(role, specs["argument_specs"]["main"]["options"])


DEFAULTS = {role: role_file(role, "defaults") for role in BASELINE}
VARS = {role: role_file(role, "vars") for role in BASELINE}


def site(hosts: int, bad: dict[str, dict]) -> tuple[list[str], dict, dict]:
    names = [f"node-{index:03d}" for index in range(hosts)] + ["mon-1"]
    groups = {
        "all": names,
        "gpu_nodes": names[:-1],
        "engine_nodes": names[:-1],
        "monitoring": ["mon-1"],
    }
    inventory = {
        name: {
            "inventory_hostname": name,
            "firewall_allow_node_metrics": [
                {"name": "node-exporter", "port": 9100, "from_groups": ["monitoring"]}
            ],
            **bad.get(name, {}),
        }
        for name in names
    }
    return names, groups, inventory


def trusted(value: object) -> object:
    """A value as Ansible loads role files: every string in it trusted as a template."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return value


def templar_render(raw: dict):
    """What the validate_input action passes: Ansible's Templar over the host's variables."""
    templar = Templar(DataLoader(), variables=raw)

    def render(name: str, value: object) -> object:
        try:
            return templar.template(trusted(value))
        except AnsibleError as error:
            raise VariableError(name, error.message) from None

    return render


def run(
    hosts: list[str], groups: dict, inventory: dict, specs: dict | None = None
) -> dict[str, list[str]]:
    specs = specs or {role: spec(role) for role in BASELINE}

    def roles_of(host: str) -> list[str]:
        return [role for role in roles_for_host(host, groups) if role in BASELINE]

    def variables_of(host: str, role: str) -> HostVariables:
        raw = layered(DEFAULTS[role], inventory[host], VARS[role])
        return HostVariables(host, raw, templar_render(raw))

    return check_hosts(hosts, roles_of, variables_of, groups, specs)


def test_a_good_site_has_no_errors():
    assert run(*site(50, {})) == {}


def test_one_bad_host_among_many_is_the_only_one_named():
    hosts, groups, inventory = site(200, {"node-137": {"model_store_path": "srv/models"}})
    errors = run(hosts, groups, inventory)
    assert list(errors) == ["node-137"]
    assert errors["node-137"] == [
        "model_store: model_store_path must be an absolute path other than /, got 'srv/models'."
    ]


def test_errors_of_every_host_are_reported_together():
    hosts, groups, inventory = site(
        5,
        {
            "node-001": {"model_store_mode": "rwx", "node_exporter_install_method": "snap"},
            "node-003": {
                "firewall_allow": [{"name": "api", "port": 8000, "from_groups": ["gatways"]}]
            },
        },
    )
    errors = run(hosts, groups, inventory)
    assert sorted(errors) == ["node-001", "node-003"]
    assert any("model_store_mode must be an octal" in e for e in errors["node-001"])
    assert any("node_exporter_install_method" in e for e in errors["node-001"])
    assert any("'gatways' is not an inventory group" in e for e in errors["node-003"])
    message = report(errors, hosts)
    assert "failed on 2 host(s), 3 error(s)" in message
    lines = message.splitlines()
    assert all(line.startswith(("node-001: ", "node-003: ")) for line in lines[1:-1])
    assert lines[-1] == (
        "The run stops on all 6 host(s) of the play, none changed: "
        "node-000, node-001, node-002, node-003, node-004, mon-1."
    )


def test_the_stopped_hosts_of_a_large_play_are_abbreviated():
    hosts = [f"h{index}" for index in range(1000)]
    message = report({"h7": ["common: bad"]}, hosts)
    assert message.endswith(
        "h0, h1, h2, h3, h4, h5, h6, h7, h8, h9, h10, h11, h12, h13, h14, "
        "h15, h16, h17, h18, h19 and 980 more."
    )


def test_rules_wait_for_the_argument_specs():
    # A type the specs refuse is reported once, by the specs; the rules do not run on it.
    v = HostVariables(
        "node-1", layered(DEFAULTS["model_store"], {"model_store_mode": 755}, VARS["model_store"])
    )
    errors = check_role("model_store", v, {"all": ["node-1"]}, spec("model_store"))
    assert errors and all("model_store_mode" in error for error in errors)


def test_hosts_that_share_their_values_are_validated_once():
    specs = {role: spec(role) for role in BASELINE}
    hosts, groups, inventory = site(30, {"node-007": {"model_store_path": "/data"}})
    run(hosts, groups, inventory, specs)
    # The engine nodes share every value the spec reads but node-007's.
    assert len(specs["model_store"]._results) == 2


def test_secret_variables_are_left_out_of_the_spec_check():
    haproxy = spec("haproxy")
    raw = layered(
        role_file("haproxy", "defaults"),
        {
            "haproxy_api_keys": "{{ vault_haproxy_api_keys }}",
            "haproxy_engines": [],
            # Defaults that follow the gateway_service role's variables (templates).
            "haproxy_gateway_service_enabled": False,
            "haproxy_gateway_service_port": 8480,
        },
        role_file("haproxy", "vars"),
    )
    errors = check_role("haproxy", HostVariables("gw-1", raw), {"all": ["gw-1"]}, haproxy)
    assert errors == []
