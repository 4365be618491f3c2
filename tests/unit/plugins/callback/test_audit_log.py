"""The onprem.llm.audit_log callback in real ansible-playbook runs of a small local playbook:
the records it writes, what it never writes, its chain across runs, and tampering that
`onprem-llm audit verify` finds."""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from ansible.plugins.callback import CallbackBase
from ansible_collections.onprem.llm.plugins.callback import audit_log
from ansible_collections.onprem.llm.plugins.callback.audit_log import CallbackModule, ChainedFile
from ansible_collections.onprem.llm.plugins.module_utils._audit_chain import (
    canonical_json,
    line_hash,
)

from onprem_llm.audit import verify
from onprem_llm.cli import main

REPO_ROOT = Path(__file__).resolve().parents[4]
COLLECTIONS = REPO_ROOT / "collections"
BIN = Path(sys.executable).parent
KEY = "audit-test-key-0123456789abcdef0123456789"
SECRET = f"planted-secret-{uuid.uuid4().hex}"
EXTRA_VAR_SECRET = f"extra-var-secret-{uuid.uuid4().hex}"
HOSTS = ("node1", "node2")

PLAYBOOK = f"""
- name: Exercise the audit trail
  hosts: all
  gather_facts: false
  tasks:
    - name: Say hello
      ansible.builtin.debug:
        msg: hello

    - name: Record a change
      ansible.builtin.command:
        cmd: /bin/true
      changed_when: true

    - name: Fail and recover
      block:
        - name: Fail on purpose
          ansible.builtin.command:
            cmd: /bin/false
          changed_when: false
      rescue:
        - name: Note the failure
          ansible.builtin.debug:
            msg: recovered

    - name: Handle a secret
      ansible.builtin.set_fact:
        audit_test_secret: {SECRET}
      no_log: true

    - name: Loop over items
      ansible.builtin.debug:
        msg: "item {{{{ item }}}}"
      loop: [1, 2, 3]

    - name: Skip this task
      ansible.builtin.debug:
        msg: never
      when: false
"""


@dataclass
class Run:
    log: Path
    output: str
    returncode: int

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()]


def run_playbook(workdir: Path, log: Path, key_file: Path | None = None) -> Run:
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "play.yml").write_text(PLAYBOOK)
    (workdir / "hosts").write_text(
        "".join(
            f"{host} ansible_connection=local ansible_python_interpreter={sys.executable}\n"
            for host in HOSTS
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ONPREM_LLM_AUDIT")}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_CALLBACKS_ENABLED="onprem.llm.audit_log",
        ONPREM_LLM_AUDIT_LOG=str(log),
        ONPREM_LLM_AUDIT_SYSLOG="false",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    if key_file is not None:
        env["ONPREM_LLM_AUDIT_KEY_FILE"] = str(key_file)
    extra_vars = json.dumps({"audit_test_token": EXTRA_VAR_SECRET})
    done = subprocess.run(
        ["ansible-playbook", "-i", "hosts", "play.yml", "-e", extra_vars],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    return Run(log, done.stdout + done.stderr, done.returncode)


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "audit.key"
    path.write_text(KEY + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def signed_run(tmp_path_factory: pytest.TempPathFactory, key_file: Path) -> Run:
    workdir = tmp_path_factory.mktemp("signed")
    run = run_playbook(workdir, workdir / "logs" / "audit.jsonl", key_file)
    assert run.returncode == 0, run.output
    return run


@pytest.fixture(scope="module")
def appended_run(tmp_path_factory: pytest.TempPathFactory, signed_run: Run) -> Run:
    """A second run, without a key, appending to a copy of the first run's file."""
    workdir = tmp_path_factory.mktemp("appended")
    log = workdir / "audit.jsonl"
    shutil.copy(signed_run.log, log)
    run = run_playbook(workdir, log)
    assert run.returncode == 0, run.output
    return run


def _tasks(records: list[dict]) -> list[dict]:
    return [r for r in records if r["kind"] == "task"]


def _verify_cli(*argv: str) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["audit", "verify", *argv], out, err)
    return code, out.getvalue() + err.getvalue()


def test_run_start_names_who_ran_what_and_where(signed_run: Run) -> None:
    start = signed_run.records()[0]
    workdir = signed_run.log.parent.parent
    galaxy = yaml.safe_load((REPO_ROOT / "galaxy.yml").read_text())
    git = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "HEAD"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert start["kind"] == "run_start" and start["seq"] == 1
    assert start["user"] == getpass.getuser()
    assert start["sudo_user"] == os.environ.get("SUDO_USER")
    assert start["controller"]
    assert start["collection_version"] == galaxy["version"]
    assert start["collection_commit"] == (git.stdout.strip() if git.returncode == 0 else None)
    assert start["playbooks"] == [str(workdir / "play.yml")]
    assert start["inventory"] == [str(workdir / "hosts")]
    assert (start["limit"], start["tags"], start["skip_tags"]) == (None, ["all"], [])
    assert (start["check"], start["diff"]) == (False, False)
    assert start["extra_vars_keys"] == ["audit_test_token"]
    assert start["ansible_version"].startswith("2.")
    assert start["time"].endswith("+00:00")
    uuid.UUID(start["run"])


def test_one_task_record_per_task_and_host(signed_run: Run) -> None:
    tasks = _tasks(signed_run.records())
    seen = [(r.get("task"), r["host"], r["outcome"], r["changed"]) for r in tasks]
    for host in HOSTS:
        expected = [
            ("Say hello", host, "ok", False),
            ("Record a change", host, "ok", True),
            ("Fail on purpose", host, "failed", False),
            ("Note the failure", host, "ok", False),
            (None, host, "ok", False),  # no_log
            ("Loop over items", host, "ok", False),  # one record for the three items
            ("Skip this task", host, "skipped", False),
        ]
        assert [s for s in seen if s[1] == host] == expected
    run_id = signed_run.records()[0]["run"]
    for record in tasks:
        assert record["run"] == run_id
        assert 0 <= record["duration"] < 60
    hello = next(r for r in tasks if r.get("task") == "Say hello")
    assert hello["play"] == "Exercise the audit trail"
    assert hello["action"] == "ansible.builtin.debug"
    assert hello["args_sha256"] == hashlib.sha256(canonical_json({"msg": "hello"})).hexdigest()


def test_a_no_log_task_leaves_only_its_outcome(signed_run: Run) -> None:
    hidden = [r for r in _tasks(signed_run.records()) if r.get("no_log")]
    assert sorted(r["host"] for r in hidden) == list(HOSTS)
    for record in hidden:
        assert set(record) == {
            "kind", "run", "time", "host", "outcome", "changed", "duration", "no_log",
            "seq", "prev", "hmac",
        }  # fmt: skip


def test_secrets_reach_no_record(signed_run: Run, appended_run: Run) -> None:
    content = appended_run.log.read_bytes()
    for secret in (SECRET, EXTRA_VAR_SECRET):
        assert secret.encode() not in content
        assert hashlib.sha256(secret.encode()).hexdigest().encode() not in content
        assert secret not in signed_run.output  # no_log holds on screen too
    args_hash = hashlib.sha256(canonical_json({"audit_test_secret": SECRET})).hexdigest()
    assert args_hash.encode() not in content


def test_run_end_holds_the_stats(signed_run: Run) -> None:
    end = signed_run.records()[-1]
    assert end["kind"] == "run_end" and end["success"] is True
    assert end["hosts"] == {
        host: {
            "ok": 5, "changed": 1, "failed": 0, "unreachable": 0, "skipped": 1, "rescued": 1,
            "ignored": 0,
        }
        for host in HOSTS
    }  # fmt: skip


def test_the_chain_verifies_with_the_api_and_the_cli(signed_run: Run, key_file: Path) -> None:
    records = signed_run.records()
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))
    assert all(isinstance(r["hmac"], str) for r in records)
    report = verify(signed_run.log, KEY.encode())
    assert report.ok and report.signed and report.records == len(records), report.problems
    code, out = _verify_cli(str(signed_run.log), "--key-file", str(key_file))
    assert code == 0, out
    assert out.strip().endswith(f"OK: {len(records)} records of 1 run, chain and HMACs intact")
    assert "not authenticated" not in signed_run.output


def test_the_file_and_its_directory_are_private(signed_run: Run) -> None:
    assert signed_run.log.stat().st_mode & 0o777 == 0o600
    assert signed_run.log.parent.stat().st_mode & 0o777 == 0o700


def _tamper(lines: list[bytes], how: str) -> tuple[bytes, list[str]]:
    """The tampered file's bytes and the problems verify must report."""
    if how == "edited":
        # A change recorded on a host, turned into no change.
        number = next(n for n, line in enumerate(lines, 1) if b'"changed":true' in line)
        lines[number - 1] = lines[number - 1].replace(b'"changed":true', b'"changed":false')
        return b"\n".join(lines) + b"\n", [
            f"line {number}: record edited (its hash does not match line {number + 1}'s prev)"
        ]
    if how == "deleted":
        del lines[4]
        return b"\n".join(lines) + b"\n", [
            "line 5: 1 record deleted before it (seq jumps from 4 to 6)"
        ]
    if how == "swapped":
        lines[4], lines[5] = lines[5], lines[4]
        return b"\n".join(lines) + b"\n", [
            "line 5: out of order (seq 6 where 5 was expected; seq 5 is on line 6)",
            "line 6: out of order (seq 5 comes after seq 6)",
        ]
    lines[-1] = lines[-1][:-30]  # truncated: a write cut short
    return b"\n".join(lines), [f"line {len(lines)}: truncated (the last line has no line end)"]


@pytest.mark.parametrize("how", ["edited", "deleted", "swapped", "truncated"])
def test_tampering_fails_verification_naming_the_line(
    signed_run: Run, tmp_path: Path, how: str
) -> None:
    content, expected = _tamper(signed_run.log.read_bytes().splitlines(), how)
    path = tmp_path / "tampered.jsonl"
    path.write_bytes(content)
    assert [str(p) for p in verify(path).problems] == expected
    code, out = _verify_cli(str(path))
    assert code == 1
    assert out.splitlines()[: len(expected)] == expected
    assert "FAILED" in out.splitlines()[-1]


def test_an_edit_to_the_last_record_fails_its_hmac(signed_run: Run, tmp_path: Path) -> None:
    lines = signed_run.log.read_bytes().splitlines()
    lines[-1] = lines[-1].replace(b'"success":true', b'"success":false')
    path = tmp_path / "edited.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    assert verify(path).ok  # the chain alone cannot see it
    assert [str(p) for p in verify(path, KEY.encode()).problems] == [
        f"line {len(lines)}: record edited (its hmac does not match)"
    ]


def test_a_second_run_continues_the_chain(signed_run: Run, appended_run: Run) -> None:
    first = signed_run.records()
    records = appended_run.records()
    second = records[len(first) :]
    assert records[: len(first)] == first
    assert second[0]["kind"] == "run_start" and second[0]["run"] != first[0]["run"]
    assert second[0]["seq"] == first[-1]["seq"] + 1
    assert second[0]["prev"] == line_hash(signed_run.log.read_bytes().splitlines()[-1])
    assert all(r["hmac"] is None for r in second)
    assert "chained but not authenticated" in appended_run.output
    assert verify(appended_run.log).ok
    # With the key, the second run's unsigned records fail, by line.
    lines = f"lines {len(first) + 1}-{len(records)}"
    assert [str(p) for p in verify(appended_run.log, KEY.encode()).problems] == [
        f"line {len(first) + 1}: no hmac, but a key was given ({lines})"
    ]


def test_a_short_key_disables_the_callback_and_the_play_succeeds(tmp_path: Path) -> None:
    short = tmp_path / "short.key"
    short.write_text("too-short\n")
    run = run_playbook(tmp_path, tmp_path / "audit.jsonl", short)
    assert run.returncode == 0, run.output
    output = " ".join(run.output.split())  # warnings wrap
    assert "audit trail disabled for this run: option key_file" in output
    assert "at least 32" in output
    assert not run.log.exists()


def _configured(
    monkeypatch: pytest.MonkeyPatch, key_file: Path | None
) -> tuple[CallbackModule, list[str]]:
    """The callback given its options directly, and the warnings it gave."""
    monkeypatch.setattr(CallbackBase, "set_options", lambda self, *args, **kwargs: None)
    callback = CallbackModule()
    warnings: list[str] = []
    monkeypatch.setattr(callback._display, "warning", warnings.append)
    callback._plugin_options = {"key_file": key_file and str(key_file), "syslog": False}
    callback.set_options()
    return callback, warnings


def test_a_key_others_can_read_is_used_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = tmp_path / "audit.key"
    key.write_text(KEY)
    key.chmod(0o644)
    callback, warnings = _configured(monkeypatch, key)
    assert not callback.disabled and callback._key == KEY.encode()
    assert warnings == [f"onprem.llm.audit_log: key_file {key} is readable by others: chmod 600 it"]


def test_a_missing_key_file_disables_the_callback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    callback, warnings = _configured(monkeypatch, tmp_path / "missing.key")
    assert callback.disabled
    assert len(warnings) == 1 and "option key_file" in warnings[0]
    assert "No such file or directory" in warnings[0]


def test_without_a_key_the_records_are_unsigned_with_a_warning(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    callback, warnings = _configured(monkeypatch, None)
    assert not callback.disabled and callback._key is None
    assert len(warnings) == 1 and "chained but not authenticated" in warnings[0]


def test_a_broken_last_line_starts_a_new_segment(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    first = ChainedFile(path, None, fsync=False)
    for number in range(3):
        assert first.append({"kind": "task", "run": "run-1", "n": number})[1] is None
    first.close()
    with path.open("r+b") as handle:  # a write cut short
        handle.truncate(path.stat().st_size - 10)
    second = ChainedFile(path, None, fsync=True)
    _unused, warning = second.append({"kind": "run_start", "run": "run-2"})
    second.close()
    assert warning == f"{path}: line 3 is truncated; a new chain segment starts after it"
    lines = path.read_bytes().splitlines()
    restart, start = json.loads(lines[3]), json.loads(lines[4])
    assert (restart["kind"], restart["bad_line"], restart["seq"]) == ("chain_restart", 3, 3)
    assert restart["prev"] == line_hash(lines[2])
    assert (start["kind"], start["seq"]) == ("run_start", 4)
    assert [str(p) for p in verify(path).problems] == [
        "line 3: not an audit record (not JSON, or no seq and prev)"
    ]


def test_writers_sharing_a_file_keep_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    writers = [ChainedFile(path, b"k" * 32, fsync=False) for _unused in range(2)]
    for number in range(6):
        writers[number % 2].append({"kind": "task", "run": f"run-{number % 2}"})
    report = verify(path, b"k" * 32)
    assert report.ok and report.records == 6 and report.runs == 2, report.problems


def test_records_go_to_syslog_and_its_failures_are_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent: list[str] = []
    monkeypatch.setattr(audit_log.syslog, "syslog", lambda priority, line: sent.append(line))
    callback = CallbackModule()
    callback._file = ChainedFile(tmp_path / "audit.jsonl", None, fsync=False)
    callback._record({"kind": "task", "run": "run-1"})
    assert sent == (tmp_path / "audit.jsonl").read_text().splitlines()

    def broken(priority: int, line: str) -> None:
        raise OSError("no syslog here")

    monkeypatch.setattr(audit_log.syslog, "syslog", broken)
    callback._record({"kind": "task", "run": "run-1"})
    assert len((tmp_path / "audit.jsonl").read_text().splitlines()) == 2


def test_an_error_disables_the_callback_with_one_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    warnings: list[str] = []
    callback = CallbackModule()
    monkeypatch.setattr(callback._display, "warning", warnings.append)

    class Broken:
        def get_name(self) -> str:
            raise RuntimeError("boom")

    callback.v2_playbook_on_play_start(Broken())
    callback.v2_playbook_on_play_start(Broken())
    assert callback.disabled
    assert warnings == [
        "onprem.llm.audit_log: audit trail disabled for this run: RuntimeError: boom"
    ]


def test_documentation_loads_with_ansible_doc() -> None:
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(COLLECTIONS)}
    done = subprocess.run(
        [str(BIN / "ansible-doc"), "-t", "callback", "--json", "onprem.llm.audit_log"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)["onprem.llm.audit_log"]["doc"]
    assert doc["type"] == "notification"
    options = doc["options"]
    assert options["path"]["env"] == [{"name": "ONPREM_LLM_AUDIT_LOG"}]
    assert options["path"]["ini"] == [{"section": "callback_audit_log", "key": "path"}]
    assert options["key_file"]["env"] == [{"name": "ONPREM_LLM_AUDIT_KEY_FILE"}]
    assert {"syslog", "fsync"} <= set(options)
