"""Allow-list validation and source resolution of the common role's firewall."""

from __future__ import annotations

import pytest
from ansible_collections.onprem.llm.plugins.module_utils._firewall import (
    FirewallRuleError,
    host_addresses,
    normalize_rules,
    parse_networks,
    resolve_sources,
    without_absent_groups,
)

GROUPS = {
    "all": ["gw-1", "gw-2", "mon-1"],
    "gateways": ["gw-1", "gw-2"],
    "monitoring": ["mon-1"],
}
HOSTVARS = {
    "gw-1": {"ansible_host": "10.20.0.11"},
    "gw-2": {"ansible_host": "gw-2.example.internal", "firewall_address": "2001:db8::12"},
    "mon-1": {"ansible_host": "mon-1", "ansible_default_ipv4": {"address": "10.20.0.31"}},
}


def test_rules_from_several_variables_are_merged_and_normalised():
    rules = normalize_rules(
        {
            "firewall_allow_redis": [
                {"name": "redis", "port": "6379", "from_groups": ["gateways"]}
            ],
            "firewall_allow": [
                {"name": "dns", "port": 53, "protocol": "udp", "from_networks": ["10.1.2.3/8"]}
            ],
        },
        GROUPS,
    )
    assert rules == [
        {
            "name": "dns",
            "port": 53,
            "protocol": "udp",
            "from_groups": [],
            "from_hosts": [],
            "from_networks": ["10.0.0.0/8"],
        },
        {
            "name": "redis",
            "port": 6379,
            "protocol": "tcp",
            "from_groups": ["gateways"],
            "from_hosts": [],
            "from_networks": [],
        },
    ]


def test_named_hosts_may_reach_every_port_and_nobody_else_may():
    # The hosts of one engine instance across hosts: NCCL and Gloo take ports the kernel picks.
    rules = normalize_rules(
        {"engine_firewall_rules": [{"name": "peer", "port": "any", "from_hosts": ["gpu-2"]}]},
        GROUPS,
    )
    assert rules[0]["port"] == "any" and rules[0]["from_hosts"] == ["gpu-2"]
    resolved = resolve_sources(rules, {}, {"gpu-2": {"ansible_host": "10.0.0.12"}})
    assert resolved[0]["sources_v4"] == ["10.0.0.12/32"]
    with pytest.raises(FirewallRuleError, match=r"^r\[0\]\.port: any opens every port, to"):
        normalize_rules({"r": [{"name": "x", "port": "any", "from_groups": ["gateways"]}]}, GROUPS)
    with pytest.raises(FirewallRuleError, match=r"from_hosts names gpu-9, not a host"):
        resolve_sources(
            normalize_rules({"r": [{"name": "x", "port": "any", "from_hosts": ["gpu-9"]}]}, GROUPS),
            {},
            {},
        )
    with pytest.raises(FirewallRuleError, match=r"^r\[0\]\.from_hosts: expected a list"):
        normalize_rules({"r": [{"name": "x", "port": 1, "from_hosts": "gpu-2"}]}, GROUPS)


def test_sources_come_from_explicit_address_ansible_host_and_facts():
    rules = normalize_rules(
        {"firewall_allow": [{"name": "r", "port": 1, "from_groups": ["gateways"]}]},
        GROUPS,
    )
    resolved = resolve_sources(rules, GROUPS, HOSTVARS)[0]
    assert resolved["sources_v4"] == ["10.20.0.11/32"]
    assert resolved["sources_v6"] == ["2001:db8::12/128"]
    assert host_addresses("mon-1", HOSTVARS["mon-1"]) == ["10.20.0.31"]


def test_host_without_any_address_is_reported():
    rules = normalize_rules(
        {"firewall_allow": [{"name": "r", "port": 1, "from_groups": ["monitoring"]}]},
        GROUPS,
    )
    with pytest.raises(FirewallRuleError, match="host mon-1 of group monitoring has no known IP"):
        resolve_sources(rules, GROUPS, {"mon-1": {"ansible_host": "mon-1"}})


def test_explicit_address_that_is_not_an_ip_is_reported():
    with pytest.raises(FirewallRuleError, match="firewall_address of host x"):
        host_addresses("x", {"firewall_address": "x.example"})


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ("not-a-list", r"firewall_allow: expected a list of rules"),
        (
            [{"name": "r", "port": 1, "from_groups": ["gateways"], "src": 1}],
            r"unknown keys \['src'\]",
        ),
        ([{"name": "bad name", "port": 1, "from_groups": ["gateways"]}], r"\[0\]\.name"),
        ([{"name": "r", "port": True, "from_groups": ["gateways"]}], r"\[0\]\.port"),
        ([{"name": "r", "port": 0, "from_groups": ["gateways"]}], r"1-65535, got 0"),
        ([{"name": "r", "port": 1, "protocol": "sctp", "from_groups": ["gateways"]}], "protocol"),
        ([{"name": "r", "port": 1, "from_groups": "gateways"}], r"from_groups: expected a list"),
    ],
)
def test_bad_rules_name_the_variable_and_field(rules, message):
    with pytest.raises(FirewallRuleError, match=message):
        normalize_rules({"firewall_allow": rules}, GROUPS)


def test_networks_must_be_a_list_of_cidrs():
    assert parse_networks(["2001:db8::1/64"], "v") == ["2001:db8::/64"]
    with pytest.raises(FirewallRuleError, match=r"v: expected a list"):
        parse_networks("10.0.0.0/8", "v")
    with pytest.raises(FirewallRuleError, match=r"v\[1\]: '10.0.0.0/33'"):
        parse_networks(["10.0.0.0/8", "10.0.0.0/33"], "v")


def test_vrrp_rules_take_no_port():
    rules = normalize_rules(
        {
            "firewall_allow_keepalived": [
                {"name": "vrrp", "protocol": "vrrp", "from_groups": ["gateways"]}
            ]
        },
        GROUPS,
    )
    assert rules[0]["protocol"] == "vrrp" and rules[0]["port"] is None
    with pytest.raises(FirewallRuleError, match=r"\[0\]\.port: protocol vrrp has no ports"):
        normalize_rules(
            {"v": [{"name": "vrrp", "protocol": "vrrp", "port": 112, "from_groups": ["gateways"]}]},
            GROUPS,
        )


def test_absent_optional_groups_leave_the_rules_and_a_rule_without_source_goes():
    rules = [
        {"name": "exporter", "port": 9100, "from_groups": ["monitoring"]},
        {"name": "redis", "port": 6379, "from_groups": ["gateways", "monitoring"]},
        {
            "name": "api",
            "port": 443,
            "from_groups": ["monitoring"],
            "from_networks": ["10.0.0.0/8"],
        },
        {"name": "typo", "port": 80, "from_groups": ["gatways"]},
    ]
    kept = without_absent_groups(rules, {"gateways": ["gw-1"]}, {"monitoring", "gateways"})
    assert kept == [
        {"name": "redis", "port": 6379, "from_groups": ["gateways"]},
        {"name": "api", "port": 443, "from_groups": [], "from_networks": ["10.0.0.0/8"]},
        # Not a group site.yml uses: left for normalize_rules to name.
        {"name": "typo", "port": 80, "from_groups": ["gatways"]},
    ]
    with pytest.raises(FirewallRuleError, match=r"x\[2\]\.from_groups: 'gatways'"):
        normalize_rules({"x": kept}, {"gateways": ["gw-1"]})


@pytest.mark.parametrize("value", ["a string", {"name": "x"}, None, [42, {"from_groups": "g"}]])
def test_values_that_are_not_rule_lists_pass_through_for_validation(value):
    assert without_absent_groups(value, {}, {"monitoring"}) == value
