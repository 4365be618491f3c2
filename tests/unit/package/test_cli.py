"""The onprem-llm command line: help, usage errors, lab status (plan: test_plan_cli.py)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import onprem_llm
from onprem_llm.cli import main
from onprem_llm.lab import LAB_LABEL, LabError, lab_status, parse_podman_ps
from onprem_llm.results import ExitCode


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        code = main(list(argv), out, err)
    except SystemExit as exit_:  # argparse: --help, --version and usage errors
        code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_help_lists_commands_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code, _unused, _unused = run_cli("--help")
    text = capsys.readouterr().out
    assert code == 0
    for command in ("deploy", "check", "rolling-restart", "validate", "plan", "lab"):
        assert command in text
    assert "130  canceled (Ctrl-C or SIGTERM)" in text


def test_console_script_entry_point_runs() -> None:
    command = [sys.executable, "-m", "onprem_llm", "--version"]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"onprem-llm {onprem_llm.__version__}"


def test_usage_errors_exit_5_not_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _unused, _unused = run_cli("deploy")  # no inventory
    assert code == ExitCode.USAGE == 5
    assert "--inventory" in capsys.readouterr().err


def test_extra_vars_must_be_files(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _unused, _unused = run_cli(
        "deploy", "-i", "inventories/local", "--project-dir", str(project), "-e", "token=abc"
    )
    assert code == ExitCode.USAGE
    assert "key=value pairs would put values on command lines" in capsys.readouterr().err


def test_project_dir_must_hold_site_yml(tmp_path: Path) -> None:
    code, _unused, err = run_cli("deploy", "-i", "x", "--project-dir", str(tmp_path))
    assert code == ExitCode.USAGE
    assert "has no site.yml" in err


def test_missing_vault_variable_is_a_usage_error(project: Path, artifacts: Path) -> None:
    code, _unused, err = run_cli(
        "deploy", "-i", "inventories/local", "--project-dir", str(project),
        "--artifact-dir", str(artifacts), "--vault-password-env", "ONPREM_LLM_TEST_UNSET_VAR",
    )  # fmt: skip
    assert code == ExitCode.USAGE
    assert "ONPREM_LLM_TEST_UNSET_VAR is not set" in err
    assert not artifacts.exists() or not any(artifacts.iterdir())  # nothing ran


def _fake_podman(directory: Path, script: str) -> Path:
    podman = directory / "podman"
    podman.write_text("#!/bin/sh\n" + script)
    podman.chmod(podman.stat().st_mode | stat.S_IXUSR)
    return podman


PODMAN_PS = [
    {
        "Id": "b2c3",
        "Names": ["lab-gw1"],
        "State": "running",
        "Status": "Up 3 minutes",
        "Image": "localhost/onprem-llm-testhost:bookworm",
        "Ports": [{"host_ip": "127.0.0.1", "host_port": 8443, "container_port": 443}],
    },
    {"Id": "a1b2", "Names": ["lab-gpu1"], "State": "exited", "Status": "Exited (0)", "Image": "x"},
]


def test_lab_status_lists_labelled_containers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls"
    script = f"echo \"$@\" > {calls}\ncat <<'EOF'\n{json.dumps(PODMAN_PS)}\nEOF\n"
    _fake_podman(tmp_path, script)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    code, out, _unused = run_cli("lab", "status")
    assert code == 0
    assert calls.read_text().split() == [
        "ps", "-a", "--filter", f"label={LAB_LABEL}", "--format", "json",
    ]  # fmt: skip
    lines = out.splitlines()
    assert lines[0].split() == ["name", "state", "status", "image", "ports"]
    assert lines[2].startswith("lab-gpu1  exited")
    assert "127.0.0.1:8443->443/tcp" in lines[3]
    code, out, _unused = run_cli("lab", "status", "--json")
    assert [c["name"] for c in json.loads(out)["containers"]] == ["lab-gpu1", "lab-gw1"]


def test_lab_status_without_podman_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    code, _unused, err = run_cli("lab", "status")
    assert code == ExitCode.ERROR
    assert "podman is not installed or not on PATH" in err


def test_lab_status_reports_podman_failures(tmp_path: Path) -> None:
    podman = _fake_podman(tmp_path, "echo 'cannot connect to the service' >&2\nexit 125\n")
    with pytest.raises(LabError, match=r"rc 125\): cannot connect to the service"):
        lab_status(str(podman))


def test_parse_podman_ps_rejects_garbage() -> None:
    assert parse_podman_ps("") == []
    with pytest.raises(LabError, match="not JSON"):
        parse_podman_ps("Error: something")
