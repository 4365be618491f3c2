"""auditd on both hosts: the CIS rule sets and the platform's watches, each rule with its key.

The kernel takes audit rules only from its initial PID namespace, so inside these test hosts
auditctl gets EPERM: the rules cannot be loaded here. What can run is tested for real: auditd's
own parser accepts every rule (only the kernel refuses it), the syscall lists match ausyscall's
tables of each architecture, the unit is skipped in a container, and the purge deletes rotated
logs past the retention."""

from pathlib import Path

import yaml

testinfra_hosts = ["ansible://monitoring-1", "ansible://gpu-1"]

ROLE = Path(__file__).resolve().parents[3] / "roles" / "audit"
RULES = "/etc/audit/rules.d/50-onprem-llm.rules"
DEFAULTS = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
RULE_SETS = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["_audit_auditd_rule_sets"]
ABSENT = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["_audit_auditd_absent_syscalls"]
EPERM = "Error sending add rule data request (Operation not permitted)"


def rules(host):
    lines = host.check_output("cat %s", RULES).splitlines()
    return [line for line in lines if line.startswith(("-a ", "-w "))]


def test_every_rule_carries_a_key_and_every_rule_set_is_there(host):
    written = rules(host)
    keys = {line.rsplit(" -k ", 1)[1] for line in written if " -k " in line}
    assert all(" -k " in line for line in written), [r for r in written if " -k " not in r]
    assert set(DEFAULTS["audit_auditd_rule_keys"]) <= keys, keys
    assert {watch["key"] for watch in DEFAULTS["audit_auditd_watches"]} <= keys
    # One rule per setuid or setgid program (CIS "privileged"), found on the host itself.
    programs = host.check_output("find /usr -xdev -type f -perm /6000").split()
    privileged = [line for line in written if line.endswith(" -k privileged")]
    assert programs and len(privileged) == len(programs)
    assert "-a always,exit -F path=/usr/bin/passwd -F perm=x" in "\n".join(privileged)
    # x86_64 hosts audit the 32-bit syscall ABI too, without the syscalls it lacks.
    assert any("-F arch=b32 -S adjtimex,settimeofday,clock_settime,stime" in r for r in written)
    assert any("-F arch=b64 -S adjtimex,settimeofday,clock_settime -k" in r for r in written)
    assert "-w /etc/haproxy -p wa -k onprem-llm-gateway" in written
    assert "-w /srv/models -p wa -k onprem-llm-models" in written
    settings = host.check_output("grep -v '^#' /etc/audit/auditd.conf")
    assert "max_log_file_action = keep_logs" in settings
    assert "disk_full_action = suspend" in settings


def test_auditd_parses_every_rule_and_only_the_kernel_refuses_it(host):
    # Word splitting without globbing: the rule's words, as augenrules hands them to auditctl.
    out = host.check_output(
        "set -f; grep -E '^-[aw] ' %s | while IFS= read -r rule; do "
        "printf '%%s\\t%%s\\n' \"$rule\" \"$(auditctl $rule 2>&1 | tr '\\n' '|')\"; done",
        RULES,
    )
    results = dict(line.split("\t", 1) for line in out.splitlines())
    assert len(results) == len(rules(host))
    rejected = {
        rule: said
        for rule, said in results.items()
        if EPERM not in said
        or said.replace(EPERM, "").replace("|", "").strip(" ")
        not in ("", "Error sending status request (Operation not permitted)")
    }
    assert not rejected, rejected


def test_the_syscall_lists_match_ausyscall_tables(host):
    syscalls = sorted(
        {
            call
            for rules in RULE_SETS.values()
            for rule in rules
            if isinstance(rule, dict)
            for call in rule["syscalls"]
        }
    )
    # Syscall names are plain identifiers: safe to put in the loop as they are.
    out = host.check_output(
        f"for table in {' '.join(ABSENT)}; do for call in {' '.join(syscalls)}; do "
        "ausyscall $table $call >/dev/null 2>&1 || echo $table $call; done; done"
    )
    unknown: dict[str, list[str]] = {table: [] for table in ABSENT}
    for line in out.splitlines():
        table, call = line.split()
        unknown[table].append(call)
    assert {table: sorted(calls) for table, calls in unknown.items()} == {
        table: sorted(calls) for table, calls in ABSENT.items()
    }


def test_auditd_is_skipped_in_a_container_not_failed(host):
    assert host.check_output("systemd-detect-virt --container") == "podman"
    assert host.check_output("systemctl show auditd -p ConditionResult --value") == "no"
    assert host.run("systemctl is-failed --quiet auditd").rc != 0
    dropin = host.file("/etc/systemd/system/auditd.service.d/onprem-llm.conf")
    assert dropin.contains("^ConditionVirtualization=!container$")


def test_rotated_audit_logs_past_the_retention_are_purged(host):
    old, recent = "/var/log/audit/audit.log.98", "/var/log/audit/audit.log.99"
    host.check_output("touch -d '-91 days' %s && touch -d '-89 days' %s", old, recent)
    try:
        assert host.service("onprem-llm-audit-purge.timer").is_enabled
        host.check_output("systemctl start onprem-llm-audit-purge.service")
        assert not host.file(old).exists
        assert host.file(recent).exists
    finally:
        host.run("rm -f %s %s", old, recent)
