"""Bad audit input fails in the validation play, before any host is touched, naming the variable."""

from __future__ import annotations

from validation_errors import assert_each_host_reports_its_case, one_host_per_case


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
    "no retention of host audit records": (
        {"audit_retention_host_days": 0},
        ["audit_retention_host_days must be 1 or more days (how long host audit records are kept)"],
    ),
    "a negative retention of request records": (
        {"audit_retention_request_days": -5},
        ["audit_retention_request_days must be 1 or more days", "got -5"],
    ),
    "a retention of playbook runs that is no number of days": (
        {"audit_retention_playbook_run_days": "a year"},
        ["'audit_retention_playbook_run_days' is of type str", "cannot be converted to an int"],
    ),
    "prompt text kept longer than the records of who asked it": (
        {"audit_retention_content_days": 120, "audit_retention_request_days": 60},
        ["audit_retention_content_days (120) is longer than audit_retention_request_days (60)"],
    ),
    "a request program name that would break the log host's rsyslog configuration": (
        {"audit_log_request_programs": ["haproxy", 'x" or 1 then stop #']},
        ["audit_log_request_programs has ['x\" or 1 then stop #']: each must be a program name"],
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
    "sealing without a store for the verification keys": (
        {"audit_journal_key_dir": ""},
        ["audit_journal_key_dir is empty but audit_journal_seal is true"],
    ),
    "an unknown audit rule set key": (
        {"audit_auditd_rule_keys": ["identity", "time_change"]},
        ["audit_auditd_rule_keys has unknown rule set keys ['time_change']"],
    ),
    "a watch on a relative path": (
        {"audit_auditd_extra_watches": [{"path": "etc/vllm", "key": "vllm"}]},
        ["audit_auditd_extra_watches[0].path must be an absolute path other than /, got 'etc/"],
    ),
    "a watch with a permission auditd does not know": (
        {"audit_auditd_extra_watches": [{"path": "/etc/vllm", "permissions": "rwd", "key": "v"}]},
        ["audit_auditd_extra_watches[0].permissions must be letters of rwxa"],
    ),
    "a watch key with a space": (
        {"audit_auditd_extra_watches": [{"path": "/etc/vllm", "key": "engine settings"}]},
        ["audit_auditd_extra_watches[0].key must be 1 to 31 letters"],
    ),
    "a watch without a key": (
        {"audit_auditd_extra_watches": [{"path": "/etc/vllm"}]},
        ["audit_auditd_extra_watches", "key"],
    ),
    "immutable rules without acknowledging the reboot": (
        {"audit_auditd_immutable": True},
        ["audit_auditd_immutable locks the audit rules until the next reboot"],
    ),
    "a log host group the inventory lacks": (
        {"audit_log_host_group": "loghosts"},
        ["audit_log_host_group names the group 'loghosts', which has no hosts in the inventory"],
    ),
    "a full-disk action auditd does not know": (
        {"audit_auditd_disk_full_action": "panic"},
        ["audit_auditd_disk_full_action"],
    ),
}


def test_every_bad_input_is_reported_in_one_run(validate_input, assert_rejected):
    """One GPU node per case, as an inventory with many mistakes is reported in one pass."""
    site = inventory({})
    prefix = "gpu-"
    site["all"]["children"]["gpu_nodes"]["hosts"] = one_host_per_case(
        BAD_INPUT, prefix, {"nvidia_driver_profile": "h200_hgx"}
    )
    output = assert_rejected(validate_input(site), [], "several bad GPU nodes")
    assert_each_host_reports_its_case(output, BAD_INPUT, prefix)


def test_immutable_rules_with_the_reboot_acknowledged_pass(validate_input):
    host_vars = {
        "audit_auditd_immutable": True,
        "audit_auditd_immutable_reboot_acknowledged": True,
        "audit_auditd_extra_watches": [{"path": "/etc/vllm", "permissions": "wa", "key": "vllm"}],
    }
    result = validate_input(inventory(host_vars))
    assert result.returncode == 0, result.stdout + result.stderr
