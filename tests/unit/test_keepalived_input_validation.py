"""Bad virtual IP input fails in the validation play before any host changes, naming the variable.

Runs playbooks/validate_input.yml controller-side only against a throwaway inventory whose hosts
do not exist; gateways with keepalived_virtual_ipaddress get the keepalived preflight.
"""

from __future__ import annotations

from validation_errors import assert_each_host_reports_its_case, one_host_per_case

PASSWORD = "vrrp-pw1"

GOOD_VARS = {
    "keepalived_virtual_ipaddress": "10.20.0.10/24",
    "keepalived_virtual_router_id": 51,
    "keepalived_auth_pass": PASSWORD,
}


def inventory(group_vars: dict, gateways: tuple[str, ...] = ("gateway-1", "gateway-2")) -> dict:
    return {
        "all": {
            "children": {
                "gateways": {"hosts": {name: {} for name in gateways}, "vars": group_vars},
            }
        }
    }


def test_good_input_passes(validate_input):
    result = validate_input(inventory(GOOD_VARS))
    assert result.returncode == 0, result.stdout + result.stderr
    # The VRRP password never appears in the output.
    assert PASSWORD not in result.stdout + result.stderr


def test_vault_reference_is_not_needed_to_validate(validate_input):
    result = validate_input(
        inventory({**GOOD_VARS, "keepalived_auth_pass": "{{ vault_keepalived_auth_pass }}"})
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_without_a_virtual_ip_nothing_is_required(validate_input):
    # One gateway and no VIP: keepalived is not used, so its settings are not checked.
    result = validate_input(inventory({"keepalived_virtual_router_id": 999}, ("gateway-1",)))
    assert result.returncode == 0, result.stdout + result.stderr


BAD_INPUT = {
    "VIP without prefix length": (
        {"keepalived_virtual_ipaddress": "10.20.0.10"},
        ["keepalived_virtual_ipaddress", "10.20.0.10/24"],
    ),
    "VIP that is not an address": (
        {"keepalived_virtual_ipaddress": "10.20.0.300/24"},
        ["keepalived_virtual_ipaddress"],
    ),
    "router id out of range": (
        {"keepalived_virtual_router_id": 256},
        ["keepalived_virtual_router_id must be 1-255"],
    ),
    "router id zero": (
        {"keepalived_virtual_router_id": 0},
        ["keepalived_virtual_router_id must be 1-255"],
    ),
    "priority out of range": (
        {"keepalived_priority": 255},
        ["keepalived_priority 0-254"],
    ),
    "password too long": (
        {"keepalived_auth_pass": "longer-than-8"},
        ["keepalived_auth_pass must hold 1 to 8 characters"],
    ),
    "empty password": (
        {"keepalived_auth_pass": ""},
        ["keepalived_auth_pass must hold 1 to 8 characters"],
    ),
    "bad interface name": (
        {"keepalived_interface": "eth0; rm -rf /"},
        ["keepalived_interface must be empty"],
    ),
    "unicast address that is not an IPv4 address": (
        {"keepalived_unicast_address": "gw-1.example"},
        ["keepalived_unicast_address"],
    ),
    "nopreempt not a boolean": (
        {"keepalived_nopreempt": "sometimes"},
        ["keepalived_nopreempt"],
    ),
}


def test_bad_input_fails_naming_the_variable(validate_input, assert_rejected):
    """One gateway per case in one validation run, as an inventory with many mistakes is
    reported in one pass; each case's message is in its own gateway's errors."""
    prefix = "gateway-"
    site = inventory(GOOD_VARS)
    site["all"]["children"]["gateways"]["hosts"] = one_host_per_case(BAD_INPUT, prefix)
    output = assert_rejected(validate_input(site), [], "several bad gateways")
    assert_each_host_reports_its_case(output, BAD_INPUT, prefix)
    assert "longer-than-8" not in output


def test_one_gateway_is_not_enough(validate_input):
    result = validate_input(inventory(GOOD_VARS, ("gateway-1",)))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "keepalived_group 'gateways'" in output
    assert "at least one more gateway" in output


def test_group_that_does_not_exist(validate_input):
    result = validate_input(inventory({**GOOD_VARS, "keepalived_group": "edge"}))
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "keepalived_group 'edge'" in output
