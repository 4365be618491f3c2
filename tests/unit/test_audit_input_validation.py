"""Bad audit input fails in the validation play, before any host is touched, naming the variable."""

from __future__ import annotations

import pytest


def inventory(host_vars: dict) -> dict:
    return {
        "all": {
            "children": {
                "monitoring": {"hosts": {"monitoring-1": {}}},
                "gpu_nodes": {
                    "hosts": {"gpu-1": {"nvidia_driver_profile": "h200_hgx", **host_vars}}
                },
            }
        }
    }


def test_defaults_pass(validate_input):
    result = validate_input(inventory({}))
    assert result.returncode == 0, result.stdout + result.stderr


BAD_INPUT = {
    "no retention": (
        {"audit_journal_retention_days": 0},
        ["audit_journal_retention_days (0) must be 1 or more days"],
    ),
    "a seal interval that is no time span": (
        {"audit_journal_seal_interval": "every quarter hour"},
        ["audit_journal_seal_interval ('every quarter hour') must be a systemd time span"],
    ),
    "a journal size without a unit journald knows": (
        {"audit_journal_max_use": "8 gigabytes"},
        ["audit_journal_max_use ('8 gigabytes') must be a size such as 8G"],
    ),
    "a port out of range": (
        {"audit_log_port": 70000},
        ["audit_log_port (70000) must be a port number, 1 to 65535"],
    ),
    "a port that is no port": (
        {"audit_log_port": "syslog"},
        ["audit_log_port"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_rejected_naming_the_variable(validate_input, assert_rejected, case):
    bad_vars, expected = BAD_INPUT[case]
    assert_rejected(validate_input(inventory(bad_vars)), expected, case)
