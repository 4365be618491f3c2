"""Real runs of small local playbooks through ansible-runner: results, progress, exit codes,
secrets, cancel, timeout and artifact rotation."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from ansible.constants import DEFAULT_VAULT_ID_MATCH
from ansible.parsing.vault import VaultLib, VaultSecret

from onprem_llm import api
from onprem_llm.cli import main
from onprem_llm.lab import lab_down, lab_up
from onprem_llm.progress import LineProgress
from onprem_llm.results import ExitCode
from onprem_llm.runner import run_playbook
from onprem_llm.secrets import REDACTED, VAULT_PASSWORD_ENV


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out, err)
    return code, out.getvalue(), err.getvalue()


class _Recorder(LineProgress):
    """Line progress that also records the planned total the bar would show."""

    def __init__(self, stream: io.StringIO) -> None:
        super().__init__(stream)
        self.totals: list[int | None] = []

    def start(self, total: int | None) -> None:
        self.totals.append(total)


def test_successful_run_reports_progress_stats_and_data(
    project: Path, artifacts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    progress = _Recorder(stream)
    options = api.RunOptions(inventory=("inventories/local",), artifact_root=artifacts)
    # A temporary directory of this test's own: tests running beside it make theirs elsewhere.
    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    before = set(temp.glob("onprem-llm-*"))
    result = api.validate(project, options, progress=progress, plan_progress=True)
    assert progress.totals == [2 * 6]  # 2 hosts x 6 tasks, as --list-tasks reports them
    assert set(temp.glob("onprem-llm-*")) <= before  # the private data dir is gone
    assert result.private_data_dir is None
    assert result.exit_code == ExitCode.OK, result.to_dict()
    assert result.status == "successful"
    # debug, command (changed), set_stats; skipped: assert (no secret), copy, fail
    assert {host: s.to_dict() for host, s in result.stats.items()} == {
        host: {"ok": 3, "changed": 1, "failed": 0, "unreachable": 0}
        | {"skipped": 3, "rescued": 0, "ignored": 0}
        for host in ("node1", "node2")
    }
    assert result.data == {"wrapper_hosts_done": 2}  # set_stats adds up the hosts
    progress = stream.getvalue()
    assert "PLAY Exercise the wrapper on local hosts" in progress
    assert "  TASK Record a change" in progress
    assert "    changed     node1" in progress and "    changed     node2" in progress
    assert result.artifact_dir.parent == artifacts
    assert (result.artifact_dir / "job_events").is_dir()
    assert "-validate-" in result.ident


def test_failing_task_message_reaches_json_and_exit_code(project: Path, artifacts: Path) -> None:
    fail = project / "fail.yml"
    fail.write_text("wrapper_fail_hosts: [node2]\n")
    code, out, _unused = run_cli(
        "deploy", "-i", "inventories/local", "-e", str(fail), "--project-dir", str(project),
        "--artifact-dir", str(artifacts), "--json", "--progress", "none",
    )  # fmt: skip
    assert code == ExitCode.HOST_FAILED == 2
    document = json.loads(out)
    assert document["status"] == "failed"
    assert document["exit_code"] == 2
    assert document["failures"] == [
        {
            "host": "node2",
            "task": "Fail where the test asks",
            "message": "planted failure on node2",
            "play": "Exercise the wrapper on local hosts",
            "unreachable": False,
        }
    ]
    assert document["stats"]["node2"]["failed"] == 1
    assert document["stats"]["node1"]["failed"] == 0


def test_check_shows_diffs_and_changes_nothing(
    project: Path, artifacts: Path, tmp_path: Path
) -> None:
    target = tmp_path / "written-by-copy"
    extra = tmp_path / "diff.yml"
    extra.write_text(f"wrapper_diff_file: {target}\n")
    code, out, err = run_cli(
        "check", "-i", "inventories/local", "--limit", "node1", "--project-dir", str(project),
        "--artifact-dir", str(artifacts), "-e", str(extra),
    )  # fmt: skip
    assert code == 0, out + err
    assert not target.exists()
    assert f"+++ {target}" in err and "+planted line" in err  # from the line progress
    lines = out.splitlines()
    assert lines[0].split() == [
        "host", "ok", "changed", "failed", "unreachable", "skipped", "rescued", "ignored",
    ]  # fmt: skip
    # debug, set_stats ok; copy would change; command (no check mode), assert, fail skipped
    assert lines[2].split()[:4] == ["node1", "3", "1", "0"]
    assert len([line for line in lines if line.startswith("node")]) == 1
    assert lines[-1].startswith("check successful (exit 0)")
    ident_dir = next(artifacts.iterdir())
    command = json.loads((ident_dir / "command").read_text())["command"]
    assert {"--check", "--diff"} <= set(command)
    assert command[command.index("--limit") + 1] == "node1"


def test_unreachable_host_exits_3(project: Path, artifacts: Path) -> None:
    code, out, _unused = run_cli(
        "deploy", "-i", "inventories/ghost", "--project-dir", str(project),
        "--artifact-dir", str(artifacts), "--json", "--progress", "none",
    )  # fmt: skip
    assert code == ExitCode.HOST_UNREACHABLE == 3
    failure = json.loads(out)["failures"][0]
    assert failure["host"] == "ghost" and failure["unreachable"] is True
    assert "Connection refused" in failure["message"]


BROKEN_PLAYBOOK = """
- name: Broken on purpose
  hosts: all
  gather_facts: false
  tasks:
    - name: Two actions in one task
      ansible.builtin.debug:
        msg: never
      ansible.builtin.ping:
"""


def test_playbook_error_exits_1_with_ansible_message(project: Path, artifacts: Path) -> None:
    # Written here rather than kept in the tree, where linters would trip on it.
    (project / "broken.yml").write_text(BROKEN_PLAYBOOK)
    options = api.RunOptions(inventory=("inventories/local",), artifact_root=artifacts)
    request = api.request_for("deploy", project, options, playbook="broken.yml")
    result = run_playbook(request)
    assert result.exit_code == ExitCode.ERROR
    assert result.error is not None and "conflicting action statements" in result.error
    assert "broken.yml" in result.error


def _every_file(*roots: Path) -> list[Path]:
    return [path for root in roots for path in root.rglob("*") if path.is_file()]


def test_planted_secrets_reach_no_artifact_output_or_command_line(
    project: Path,
    artifacts: Path,
    audit_log: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    vault_password = f"vault-password-{uuid.uuid4().hex}"
    vaulted_value = f"vaulted-value-{uuid.uuid4().hex}"
    env_token = f"env-token-{uuid.uuid4().hex}"
    vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(vault_password.encode()))])
    secrets_file = project / "secrets.yml"
    secrets_file.write_bytes(vault.encrypt(f"wrapper_secret: {vaulted_value}\n"))
    monkeypatch.setenv(VAULT_PASSWORD_ENV, vault_password)
    monkeypatch.setenv("WRAPPER_TEST_TOKEN", env_token)

    code, out, err = run_cli(
        "deploy", "-i", "inventories/local", "-e", str(secrets_file), "--project-dir",
        str(project), "--artifact-dir", str(artifacts), "--keep-private-data-dir", "--json",
        "--progress", "lines",
    )  # fmt: skip
    assert code == 0, out + err
    document = json.loads(out)
    # The vaulted variable was decrypted and used: its task ran instead of being skipped.
    assert document["stats"]["node1"]["ok"] == 4
    private_dir = Path(document["private_data_dir"])
    request.addfinalizer(lambda: shutil.rmtree(private_dir, ignore_errors=True))
    files = _every_file(private_dir, artifacts)
    assert len(files) > 10  # command, stdout, status, rc and the job events at least
    # The runner enabled the audit callback: the run is on record, by variable names only.
    records = [json.loads(line) for line in audit_log.read_text().splitlines()]
    assert records[0]["kind"] == "run_start" and records[-1]["kind"] == "run_end"
    assert "wrapper_secret" in records[0]["extra_vars_keys"]
    files.append(audit_log)
    for path in files:
        content = path.read_bytes()
        for secret in (vault_password, vaulted_value, env_token):
            assert secret.encode() not in content, f"{secret[:14]}... found in {path}"
    for secret in (vault_password, vaulted_value, env_token):
        assert secret not in out + err
    recorded = json.loads((Path(document["artifact_dir"]) / "command").read_text())
    assert VAULT_PASSWORD_ENV not in recorded["env"]
    assert recorded["env"]["WRAPPER_TEST_TOKEN"] == REDACTED
    assert "--ask-vault-pass" in recorded["command"]
    assert not (private_dir / "env" / "passwords").exists()


def _processes_with(marker: str) -> list[int]:
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and marker in (proc / "cmdline").read_bytes().decode():
                found.append(int(proc.name))
        except OSError:
            continue
    return found


class _InterruptOnTask(io.StringIO):
    """Progress stream that sends this process SIGINT, as Ctrl-C does, when a task starts."""

    def __init__(self, task: str) -> None:
        super().__init__()
        self.task = task

    def write(self, text: str) -> int:
        if text.strip() == f"TASK {self.task}":
            os.kill(os.getpid(), signal.SIGINT)
        return super().write(text)


def test_ctrl_c_cancels_the_run_and_its_processes(
    slow_project: Path, artifacts: Path, tmp_path: Path
) -> None:
    marker = f"{37 + uuid.uuid4().int % 1000 / 1000:.3f}"
    extra = tmp_path / "sleep.yml"
    extra.write_text(f"wrapper_sleep_seconds: {marker}\n")
    out, err = io.StringIO(), _InterruptOnTask("Sleep")
    # Safety net: a SIGINT that arrived outside main() must not stop the test session.
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)
    started = time.monotonic()
    try:
        code = main(
            ["deploy", "-i", "inventories/local", "-e", str(extra), "--project-dir",
             str(slow_project), "--artifact-dir", str(artifacts), "--json", "--progress", "lines"],
            out,
            err,
        )  # fmt: skip
    finally:
        signal.signal(signal.SIGINT, previous)
    assert time.monotonic() - started < 20
    assert code == ExitCode.CANCELED == 130
    document = json.loads(out.getvalue())
    assert document["status"] == "canceled"
    assert (Path(document["artifact_dir"]) / "status").read_text() == "canceled"
    assert "canceling: stopping ansible-playbook" in err.getvalue()
    deadline = time.monotonic() + 5
    while _processes_with(f"sleep {marker}") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(f"sleep {marker}") == []


def test_timeout_exits_124(project: Path, artifacts: Path) -> None:
    options = api.RunOptions(inventory=("inventories/local",), artifact_root=artifacts, timeout=1)
    request = api.request_for("deploy", project, options, playbook="slow.yml")
    result = run_playbook(request)
    assert result.status == "timeout"
    assert result.exit_code == ExitCode.TIMEOUT == 124
    assert result.error == "timed out after 1 s"


def test_lab_up_and_down_run_their_playbooks_and_rotate_artifacts(
    project: Path, artifacts: Path
) -> None:
    options = api.RunOptions(artifact_root=artifacts, rotate_artifacts=2)
    up = lab_up(project, options)
    assert up.exit_code == ExitCode.OK, up.to_dict()
    assert [step.action for step in up.steps] == ["lab_up", "deploy"]
    assert up.steps[0].data == {"wrapper_lab": "up"}  # playbooks/lab_up.yml on localhost
    assert set(up.steps[0].stats) == {"localhost"}
    assert set(up.steps[1].stats) == {"labnode1", "labnode2"}  # site.yml on inventories/lab
    down = lab_down(project, options)
    assert down.exit_code == ExitCode.OK
    assert down.steps[0].data == {"wrapper_lab": "down"}
    # Three runs, two kept: the oldest run's artifacts were rotated out.
    idents = [step.ident for step in (*up.steps, *down.steps)]
    assert len(set(idents)) == 3
    assert sorted(path.name for path in artifacts.iterdir()) == sorted(idents[1:])
