"""Bad input fails in the validation play, before any host is touched, naming the variable.

playbooks/validate_input.yml runs controller-side only (no connection), so these runs reach no
host: the inventory's hosts do not exist.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable

from validation_errors import assert_each_host_reports_its_case, gpu_site, one_host_per_case

GOOD_VARS = {
    "firewall_admin_networks": ["10.20.250.0/24"],
    "firewall_allow": [{"name": "metrics", "port": 9100, "from_groups": ["monitoring"]}],
}


def run_validation(
    validate_input: Callable[[dict], subprocess.CompletedProcess[str]], host_vars: dict
) -> subprocess.CompletedProcess[str]:
    inventory = {
        "all": {
            "children": {
                "gpu_nodes": {"hosts": {"node-1": host_vars}},
                "monitoring": {"hosts": {"monitoring-1": {}}},
            }
        }
    }
    return validate_input(inventory)


def test_good_input_passes(validate_input):
    result = run_validation(validate_input, GOOD_VARS)
    assert result.returncode == 0, result.stdout + result.stderr


BAD_INPUT = {
    "port given as a word": (
        {"firewall_allow": [{"name": "api", "port": "http", "from_groups": ["gpu_nodes"]}]},
        ["firewall_allow", "port"],
    ),
    "port out of range": (
        {"firewall_allow": [{"name": "api", "port": 70000, "from_groups": ["gpu_nodes"]}]},
        ["firewall_allow[0].port", "1-65535"],
    ),
    "unknown group in an allow-list": (
        {"firewall_allow": [{"name": "api", "port": 8000, "from_groups": ["gatways"]}]},
        ["firewall_allow[0].from_groups", "'gatways' is not an inventory group"],
    ),
    "CIDR that does not parse": (
        {"firewall_admin_networks": ["10.20.300.0/24"]},
        ["firewall_admin_networks[0]", "not a CIDR network"],
    ),
    "bad CIDR in a rule added by another variable": (
        {"firewall_allow_gateway": [{"name": "https", "port": 443, "from_networks": ["any"]}]},
        ["firewall_allow_gateway[0].from_networks[0]", "not a CIDR network"],
    ),
    "rule that allows nobody": (
        {"firewall_allow": [{"name": "api", "port": 8000}]},
        ["firewall_allow[0]", "allows nobody"],
    ),
    "duplicate rule names": (
        {
            "firewall_allow": [
                {"name": "api", "port": 8000, "from_groups": ["monitoring"]},
                {"name": "api", "port": 8001, "from_groups": ["monitoring"]},
            ]
        },
        ["firewall_allow[1].name", "already used by firewall_allow[0]"],
    ),
}


def test_every_bad_input_is_reported_in_one_run(validate_input, assert_rejected):
    """One GPU node per case, as an inventory with many mistakes is reported in one pass."""
    nodes = one_host_per_case(BAD_INPUT, "node-", GOOD_VARS)
    output = assert_rejected(validate_input(gpu_site(nodes)), [], "several bad GPU nodes")
    # any_errors_fatal: the run stops at validation for every host.
    assert "monitoring-1" in output
    assert_each_host_reports_its_case(output, BAD_INPUT, "node-")
