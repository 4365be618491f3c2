"""The onprem.llm.audit_log_prune action in real ansible-playbook runs, with the audit_log
callback writing to the same log while the run prunes it: the retention of playbook runs."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from ansible_collections.onprem.llm.plugins.callback.audit_log import ChainedFile

from onprem_llm.audit import verify

COLLECTIONS = Path(__file__).resolve().parents[4] / "collections"
KEY = b"prune-test-key-0123456789abcdef0123456789"


def old_log(path: Path, ages_in_days: list[int]) -> None:
    """Task records of earlier runs, oldest first, as the callback writes them."""
    writer = ChainedFile(path, KEY, fsync=False)
    now = datetime.now(UTC)
    for number, age in enumerate(ages_in_days):
        when = (now - timedelta(days=age)).isoformat(timespec="milliseconds")
        writer.append({"kind": "task", "run": f"run-{age}", "time": when, "host": f"n{number}"})
    writer.close()


def prune_play(tmp_path: Path, days: Any, *extra: str) -> tuple[Any, dict[str, Any]]:
    """One run that prunes with the callback's own settings, the callback recording it."""
    key_file = tmp_path / "audit.key"
    key_file.write_bytes(KEY)
    key_file.chmod(0o600)
    playbook = tmp_path / "prune.yml"
    playbook.write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Apply the retention of playbook runs",
                    "hosts": "localhost",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Prune",
                            "onprem.llm.audit_log_prune": {"days": days},
                            "register": "pruned",
                        },
                        {"name": "Show", "ansible.builtin.debug": {"var": "pruned"}},
                    ],
                }
            ]
        )
    )
    result = subprocess.run(
        ["ansible-playbook", "-i", "localhost,", "-c", "local", str(playbook), *extra],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env={
            **os.environ,
            "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS),
            "ANSIBLE_CALLBACKS_ENABLED": "onprem.llm.audit_log",
            "ONPREM_LLM_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
            "ONPREM_LLM_AUDIT_KEY_FILE": str(key_file),
            "ONPREM_LLM_AUDIT_SYSLOG": "false",
            "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
        },
    )
    start = result.stdout.find("{")
    report = json.JSONDecoder().raw_decode(result.stdout[start:])[0] if start >= 0 else {}
    tasks = report.get("plays", [{}])[0].get("tasks", [])
    return result, (tasks[0]["hosts"]["localhost"] if tasks else {})


def test_old_runs_leave_the_log_and_the_run_that_pruned_still_verifies(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    old_log(log, [800, 400, 366, 300, 10])
    result, pruned = prune_play(tmp_path, 365)
    assert result.returncode == 0, result.stdout + result.stderr
    assert pruned["changed"] is True
    assert (pruned["removed"], pruned["kept"]) == (3, 2 + 1), pruned  # + this run's run_start
    assert pruned["path"] == str(log)
    report = verify(log, KEY)
    assert report.ok, report.problems
    assert report.pruned == 3
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert records[0]["kind"] == "pruned"
    assert {record.get("run") for record in records[1:3]} == {"run-300", "run-10"}
    # The callback went on recording the run after the prune rewrote the file.
    assert records[-1]["kind"] == "run_end" and records[-1]["success"] is True

    again, pruned = prune_play(tmp_path, 365)
    assert again.returncode == 0 and pruned["changed"] is False and pruned["removed"] == 0
    assert verify(log, KEY).ok


def test_check_mode_counts_and_changes_nothing(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    old_log(log, [400, 10])
    before = log.read_bytes()
    result, pruned = prune_play(tmp_path, 365, "--check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert pruned["changed"] is True and pruned["removed"] == 1
    assert log.read_bytes().startswith(before)  # only this run's records were appended
    assert verify(log, KEY).pruned is None


def test_a_log_that_does_not_verify_is_kept_with_a_warning(tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    old_log(log, [500, 400, 10])
    lines = log.read_text().splitlines(keepends=True)
    log.write_text(lines[0] + lines[2])  # a record deleted
    result, pruned = prune_play(tmp_path, 365)
    assert result.returncode == 0, result.stdout + result.stderr
    assert pruned["changed"] is False and "does not verify" in pruned["msg"]
    assert any("nothing removed" in warning for warning in pruned["warnings"])
    assert log.read_text().startswith(lines[0] + lines[2])


def test_a_retention_below_one_day_fails(tmp_path: Path) -> None:
    result, pruned = prune_play(tmp_path, 0)
    assert result.returncode != 0
    assert pruned["failed"] is True and "days must be 1 or more, got 0" in pruned["msg"]
