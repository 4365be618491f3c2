"""Each host's firewall opens the ports its roles listen on, declared by those roles.

The firewall role reads <role>_firewall_rules of every role site.yml applies to the host
(onprem.llm.firewall_listeners) and resolves their sources (onprem.llm.firewall_rules). These
runs do the same on the controller for the example inventories and small sites made here; no
host is reached.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

# The firewall role's two steps, for every host, reported as JSON.
PLAY = [
    {
        "name": "Resolve every host's firewall rules as the firewall role does",
        "hosts": "all",
        "gather_facts": False,
        "tasks": [
            {
                "name": "Read the ports",
                "onprem.llm.firewall_listeners": {"hosts": "{{ ansible_play_batch }}"},
                "run_once": True,
                "register": "listeners",
            },
            {
                "name": "Resolve",
                "ansible.builtin.debug": {
                    "msg": "{{ listeners.hosts[inventory_hostname].rules"
                    " | onprem.llm.firewall_rules(groups, hostvars) }}"
                },
            },
        ],
    }
]


@pytest.fixture
def resolve(controller_play) -> Callable[[Path | dict], dict[str, dict[str, tuple]]]:
    """{host: {rule name: (protocol, port, sources)}} for an inventory path or dict."""

    def run(inventory: Path | dict) -> dict[str, dict[str, tuple]]:
        result, report = controller_play(PLAY, inventory)
        assert result.returncode == 0, result.stdout[-4000:] + result.stderr
        resolved = report["plays"][0]["tasks"][1]["hosts"]
        return {
            host: {
                rule["name"]: (
                    rule["protocol"],
                    rule["port"],
                    tuple(rule["sources_v4"] + rule["sources_v6"]),
                )
                for rule in outcome["msg"]
            }
            for host, outcome in resolved.items()
        }

    return run


def ports(rules: dict[str, tuple]) -> set:
    return {(protocol, port) for protocol, port, _sources in rules.values()}


def test_each_example_host_opens_what_its_services_listen_on(resolve):
    hosts = resolve(REPO_ROOT / "inventories" / "prod")
    monitoring = ("10.20.0.31/32",)
    assert ports(hosts["gateway-01"]) == {
        ("tcp", 443), ("tcp", 8405), ("tcp", 8081), ("tcp", 9100)
    }  # fmt: skip
    assert hosts["gateway-01"]["gateway-https"][2] == ("10.0.0.0/8",)
    assert hosts["gateway-01"]["haproxy-exporter"][2] == monitoring
    assert ports(hosts["redis-01"]) == {("tcp", 6379), ("tcp", 9121), ("tcp", 9100)}
    assert ports(hosts["monitoring-01"]) == {
        ("tcp", 9090), ("tcp", 9093), ("tcp", 2514), ("tcp", 9100)
    }  # fmt: skip
    assert hosts["monitoring-01"]["prometheus"][2] == ("10.20.250.0/24",)
    # Every host ships its log to the log host.
    assert len(hosts["monitoring-01"]["audit-log-relp"][2]) == len(hosts)
    # H200 nodes: two engine instances (two 4-GPU placements), DCGM, node_exporter.
    assert ports(hosts["h200-node-01"]) == {
        ("tcp", 8000), ("tcp", 8001), ("tcp", 9400), ("tcp", 9100)
    }  # fmt: skip
    gateways_and_monitoring = {"10.20.0.11/32", "10.20.0.12/32", *monitoring}
    assert set(hosts["h200-node-01"]["engine-8000"][2]) == gateways_and_monitoring
    # GB200 trays reach each other's IMEX daemon; only the rack's 18 trays may.
    imex = hosts["rack01-tray01"]["nvidia-imex"]
    assert imex[:2] == ("tcp", 50000) and len(imex[2]) == 18
    assert "nvidia-imex" not in hosts["h200-node-01"]


def test_the_lab_opens_nothing_a_host_does_not_run(resolve):
    hosts = resolve(REPO_ROOT / "inventories" / "lab")
    for host, rules in hosts.items():
        names = set(rules)
        assert "node-exporter" in names, host
        if host != "lab-gpu-1":
            assert not {"dcgm-exporter", "engine-8000"} & names, host
        if host != "lab-monitoring-1":
            assert not {"prometheus", "alertmanager", "audit-log-relp"} & names, host


def site(gateway_vars: dict | None = None, monitoring: bool = True) -> dict:
    children = {
        "gateways": {
            "hosts": {
                "gw-1": {"ansible_host": "10.1.0.11"},
                "gw-2": {"ansible_host": "10.1.0.12"},
            },
            "vars": gateway_vars or {},
        },
        "redis": {
            "hosts": {f"redis-{n}": {"ansible_host": f"10.1.0.2{n}"} for n in (1, 2, 3)},
            "vars": {"redis_sentinel_enabled": True},
        },
    }
    if monitoring:
        children["monitoring"] = {"hosts": {"mon-1": {"ansible_host": "10.1.0.40"}}}
    return {"all": {"children": children}}


def test_keepalived_and_sentinel_are_opened_between_their_members(resolve):
    hosts = resolve(site({"keepalived_virtual_ipaddress": "10.1.0.10/24"}))
    vrrp = hosts["gw-1"]["keepalived-vrrp"]
    assert vrrp == ("vrrp", None, ("10.1.0.11/32", "10.1.0.12/32"))
    sentinel = hosts["redis-2"]["redis-sentinel"]
    assert sentinel[:2] == ("tcp", 26379)
    assert set(sentinel[2]) == {"10.1.0.11/32", "10.1.0.12/32"} | {
        f"10.1.0.2{n}/32" for n in (1, 2, 3)
    }


def test_without_monitoring_hosts_the_exporters_stay_closed(resolve):
    hosts = resolve(site(monitoring=False))
    for rules in hosts.values():
        assert not {"node-exporter", "haproxy-exporter", "redis-exporter"} & set(rules)
    assert "gateway-https" in hosts["gw-1"] and "redis" in hosts["redis-1"]
    # Without a virtual IP, keepalived is not applied, so VRRP stays closed.
    assert "keepalived-vrrp" not in hosts["gw-1"]


@pytest.mark.parametrize(
    ("host_vars", "expected"),
    [
        (
            {"haproxy_client_networks": ["10.0.0.0/33"]},
            ["haproxy_firewall_rules[0].from_networks[0]", "not a CIDR network"],
        ),
        (
            {"haproxy_https_port": 0},
            ["haproxy_https_port", "1-65535"],
        ),
        (
            {"haproxy_firewall_rules": [{"name": "api", "port": 443, "from_groups": ["clints"]}]},
            ["haproxy_firewall_rules[0].from_groups", "'clints' is not an inventory group"],
        ),
        (
            {"haproxy_firewall_rules": [{"name": "api", "port": 443}]},
            ["haproxy_firewall_rules[0]", "allows nobody"],
        ),
    ],
    ids=["bad client network", "bad port", "unknown group", "nobody allowed"],
)
def test_bad_listener_rules_fail_validation_naming_the_variable(
    validate_input, assert_rejected, host_vars, expected
):
    inventory = site()
    inventory["all"]["children"]["gateways"]["hosts"]["gw-1"].update(host_vars)
    output = assert_rejected(validate_input(inventory), expected, str(host_vars))
    assert "gw-1: haproxy:" in output
