"""Bad gateway input fails in the validation play, before any host is touched, naming the variable.

Runs playbooks/validate_input.yml controller-side only against a throwaway inventory whose hosts
do not exist; the gateway host gets the pki and haproxy preflights.
"""

from __future__ import annotations

import pytest

KEY = "sk-test-0123456789abcdef0123456789abcdef"

GOOD_VARS = {
    "haproxy_api_keys": {"team-a": KEY},
    "haproxy_rate_limits": {"team-a": 100},
    "haproxy_engines": [
        {"name": "h200-node-01-0", "address": "10.20.1.11", "port": 8000},
        {"name": "h200-node-01-1", "address": "10.20.1.11", "port": 8001},
    ],
    "haproxy_cloud_backup_url": "https://api.example.com/v1",
    "haproxy_cloud_backup_api_key": "sk-cloud-test",
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


def test_good_input_passes(validate_input):
    result = validate_input(inventory(GOOD_VARS))
    assert result.returncode == 0, result.stdout + result.stderr
    # Keys never appear in the output.
    assert KEY not in result.stdout + result.stderr


def test_vault_references_are_not_needed_to_validate(validate_input):
    # As in inventories/prod: the keys reference the vault, which validation may not have.
    result = validate_input(
        inventory(
            {
                **GOOD_VARS,
                "haproxy_api_keys": "{{ vault_haproxy_api_keys }}",
                "haproxy_cloud_backup_api_key": "{{ vault_haproxy_cloud_backup_api_key }}",
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
    "cloud backup URL without a key": (
        {"haproxy_cloud_backup_api_key": ""},
        ["haproxy_cloud_backup_api_key must be given"],
    ),
    "empty data-class header name": (
        {"haproxy_data_class_header": ""},
        ["haproxy_data_class_header", "HTTP header names"],
    ),
    "duplicate engine names": (
        {
            "haproxy_engines": [
                {"name": "node-1", "address": "10.20.1.11", "port": 8000},
                {"name": "node-1", "address": "10.20.1.12", "port": 8000},
            ]
        },
        ["haproxy_engines", "duplicate names: ['node-1']"],
    ),
    "two engines on one address and port": (
        {
            "haproxy_engines": [
                {"name": "node-1-a", "address": "10.20.1.11", "port": 8000},
                {"name": "node-1-b", "address": "10.20.1.11", "port": 8000},
            ]
        },
        ["haproxy_engines", "duplicate address:port: ['10.20.1.11:8000']"],
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
    "cloud backup URL that is not http(s)": (
        {"haproxy_cloud_backup_url": "ftp://api.example.com"},
        ["haproxy_cloud_backup_url", "http(s) URL"],
    ),
    "restricted data class allowed off-site": (
        {"haproxy_cloud_backup_data_classes": ["public", "restricted"]},
        ["haproxy_cloud_backup_data_classes", "other than 'restricted'"],
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
        {"haproxy_engines": [{"name": "n", "address": "10.20.1.11", "port": 70000}]},
        ["haproxy_engines", "1-65535"],
    ),
    "stats network that does not parse": (
        {"haproxy_stats_allowed_networks": ["10.0.0.0/33"]},
        ["haproxy_stats_allowed_networks[0]", "not a CIDR network"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_rejected_naming_the_variable(validate_input, assert_rejected, case):
    bad_vars, expected = BAD_INPUT[case]
    result = validate_input(inventory({**GOOD_VARS, **bad_vars}))
    output = assert_rejected(result, expected, case)
    assert KEY not in output
