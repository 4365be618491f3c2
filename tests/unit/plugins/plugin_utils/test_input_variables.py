"""A host's variables as a role sees them: precedence, lazy templating, roles by group."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import (
    HostVariables,
    VariableError,
    has_template,
    layered,
    plain,
    roles_for_host,
    simple_template,
)

ROLES = Path(__file__).resolve().parents[4] / "roles"

GROUPS = {
    "all": ["node-1", "gw-1", "gw-2", "mon-1"],
    "gpu_nodes": ["node-1"],
    "engine_nodes": ["node-1"],
    "gateways": ["gw-1", "gw-2"],
    "monitoring": ["mon-1"],
}


def role_file(role: str, part: str) -> dict:
    return yaml.safe_load((ROLES / role / part / "main.yml").read_text()) or {}


class Render:
    """A stand-in for Ansible's Templar: records what it is asked to render."""

    def __init__(self, results: dict[str, object]) -> None:
        self.results = results
        self.calls: list[str] = []

    def __call__(self, name: str, value: object) -> object:
        self.calls.append(name)
        if value not in self.results:
            raise VariableError(name, "cannot render")
        return self.results[value]


BASELINE = ["common", "data_volume", "firewall", "pki", "node_exporter"]
GPU_STACK = ["nvidia_driver", "cuda_toolkit", "nccl", "container_runtime", "dcgm", "gpu_validate"]


def conditions(**variables: object):
    """applies(when) for site.yml's role conditions, evaluated with these host variables."""
    results = {
        "gateway_service_enabled | default(false) | bool": bool(
            variables.get("gateway_service_enabled", False)
        ),
        "keepalived_virtual_ipaddress | default('') | length > 0": bool(
            variables.get("keepalived_virtual_ipaddress", "")
        ),
    }
    return results.__getitem__


@pytest.mark.parametrize(
    ("host", "variables", "expected"),
    [
        ("mon-1", {}, [*BASELINE, "prometheus", "audit"]),
        ("node-1", {}, [*BASELINE, *GPU_STACK, "model_store", "engine", "audit"]),
        ("gw-1", {}, [*BASELINE, "haproxy", "audit"]),
        (
            "gw-1",
            {"gateway_service_enabled": True},
            [*BASELINE, "haproxy", "gateway_service", "audit"],
        ),
        (
            "gw-1",
            {"gateway_service_enabled": True, "keepalived_virtual_ipaddress": "10.20.0.10/24"},
            [*BASELINE, "haproxy", "gateway_service", "keepalived", "audit"],
        ),
    ],
)
def test_roles_follow_the_host_groups_and_site_yml_conditions(host, variables, expected):
    assert roles_for_host(host, GROUPS, conditions(**variables)) == expected


def test_a_role_whose_condition_cannot_be_evaluated_is_validated():
    assert "keepalived" in roles_for_host("gw-1", GROUPS)


def test_a_host_in_no_group_still_gets_the_baseline():
    assert roles_for_host("redis-1", {"all": ["redis-1"]}) == [*BASELINE, "audit"]


def test_inventory_wins_over_defaults_and_role_vars_win_over_inventory():
    defaults = role_file("haproxy", "defaults")
    role_vars = role_file("haproxy", "vars")
    inventory = {"haproxy_balance": "session_hash", "_haproxy_duration": "inventory"}
    v = HostVariables("gw-1", layered(defaults, inventory, role_vars))
    assert v["haproxy_balance"] == "session_hash"
    assert v["haproxy_https_port"] == defaults["haproxy_https_port"]
    assert v["_haproxy_duration"] == role_vars["_haproxy_duration"]


def test_simple_templates_resolve_without_jinja_and_keep_the_type():
    render = Render({})
    raw = layered(
        role_file("cuda_toolkit", "defaults"),
        {"nvidia_driver_branch": 570, "inventory_hostname": "node-1"},
    )
    v = HostVariables("node-1", raw, render)
    assert v["cuda_toolkit_driver_branch"] == 570
    raw.pop("nvidia_driver_branch")
    assert HostVariables("node-1", raw, render)["cuda_toolkit_driver_branch"] == 580
    assert render.calls == []


def test_text_around_expressions_is_joined():
    v = HostVariables(
        "gw-1", {"a": "x", "b": 5, "url": "http://{{ a }}:{{ b }}/{{ c | default('p') }}"}
    )
    assert v["url"] == "http://x:5/p"


def test_an_undefined_variable_is_an_error_naming_the_variable():
    v = HostVariables("gw-1", {"key": "{{ vault_key }}"})
    with pytest.raises(VariableError, match="key: 'vault_key' is undefined"):
        v["key"]
    assert not v.defined("key")
    assert not v.defined("missing")
    with pytest.raises(VariableError, match="missing: is not defined"):
        v["missing"]


def test_a_template_that_refers_to_itself_is_an_error():
    v = HostVariables("h", {"a": "{{ b }}", "b": "{{ a }}"})
    with pytest.raises(VariableError, match="refers to itself"):
        v["a"]


def test_other_templates_go_to_the_templar_only_when_read_and_once():
    render = Render({"{{ x | upper }}": "X"})
    v = HostVariables("h", {"x": "x", "y": "{{ x | upper }}", "z": "{{ nope | upper }}"}, render)
    assert render.calls == []
    assert v["y"] == "X"
    assert v["y"] == "X"
    assert render.calls == ["y"]


def test_a_rendered_template_is_reused_by_hosts_whose_variables_are_the_same():
    memo: dict = {}
    render = Render({"{{ x | upper }}": "X"})
    for host in ("h1", "h2", "h3"):
        assert HostVariables(host, {"x": "x", "y": "{{ x | upper }}"}, render, memo)["y"] == "X"
    assert render.calls == ["y"]
    HostVariables("h4", {"x": "other", "y": "{{ x | upper }}"}, render, memo)["y"]
    assert render.calls == ["y", "y"]


def test_lookups_are_never_reused():
    memo: dict = {}
    render = Render({"{{ lookup('env', 'HOME') }}": "/root"})
    for host in ("h1", "h2"):
        HostVariables(host, {"y": "{{ lookup('env', 'HOME') }}"}, render, memo)["y"]
    assert render.calls == ["y", "y"]


@pytest.mark.parametrize(
    ("template", "parts", "defaults"),
    [
        ("{{ a }}", ["a"], {}),
        ("{{ a | default(580) }}", ["a"], {"a": 580}),
        ("{{- a | default('13.0') -}}", ["a"], {"a": "13.0"}),
        ("/usr/local/cuda-{{ v | default('x') }}", ["/usr/local/cuda-", "v"], {"v": "x"}),
    ],
)
def test_simple_templates_are_recognised(template, parts, defaults):
    result = simple_template(template)
    assert result is not None
    assert [part for part, _default in result] == parts
    for part, default in result:
        if part in defaults:
            assert default == (defaults[part],)


@pytest.mark.parametrize(
    "template",
    ["{{ a | upper }}", "{{ a | default('', true) }}", "{% if a %}x{% endif %}", "{{ a }}{# c #}"],
)
def test_other_templates_need_jinja(template):
    assert simple_template(template) is None


def test_has_template_and_plain():
    assert has_template({"a": ["x", "{{ y }}"]})
    assert not has_template({"a": ["x", 1, None]})
    value = plain({"a": ("x", 1, True, 2.5, None)})
    assert value == {"a": ["x", 1, True, 2.5, None]}
