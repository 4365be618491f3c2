"""`onprem-llm cache purge`: its checks, the request it makes, what it prints, and a real run of
a stand-in playbook that reports the extra vars it received."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cli_runner import run_cli

from onprem_llm import api
from onprem_llm.results import ExitCode, RunResult
from onprem_llm.runner import RunRequest, UsageError

TENANT = 'team "a" o\'brien $(id) ü'  # quotes, spaces and a shell substitution reach it as is


def _result(request: RunRequest, data: dict[str, Any], exit_code: ExitCode) -> RunResult:
    return RunResult(
        action=request.action,
        playbook=str(request.playbook),
        status="successful" if exit_code == ExitCode.OK else "failed",
        exit_code=exit_code,
        rc=0 if exit_code == ExitCode.OK else 2,
        ident="20260101T120000Z-cache-purge-abc123",
        artifact_dir=request.artifact_root / "20260101T120000Z-cache-purge-abc123",
        duration_s=1.5,
        data=data,
    )


class _FakeRuns:
    """Stands in for run_playbook: records each request and answers with a canned result."""

    def __init__(self, data: dict[str, Any], exit_code: ExitCode = ExitCode.OK) -> None:
        self.data = data
        self.exit_code = exit_code
        self.requests: list[RunRequest] = []

    def __call__(self, request: RunRequest, *args: Any, **kwargs: Any) -> RunResult:
        self.requests.append(request)
        return _result(request, self.data, self.exit_code)


@pytest.fixture
def fake_runs(monkeypatch: pytest.MonkeyPatch) -> _FakeRuns:
    runs = _FakeRuns({"cache_purge": {"deleted": 42, "tenant": "team-a", "model": ""}})
    monkeypatch.setattr(api, "run_playbook", runs)
    return runs


def _purge(project: Path, artifacts: Path, *args: str) -> tuple[int, str, str]:
    return run_cli(
        "cache", "purge", "-i", "inventories/local", "--project-dir", str(project),
        "--artifact-dir", str(artifacts), "--progress", "none", *args,
    )  # fmt: skip


def test_help_lists_the_cache_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, _unused, _unused = run_cli("--help")
    assert code == 0
    assert "cache          the gateways' response cache: purge, evict" in capsys.readouterr().out
    code, _unused, _unused = run_cli("cache", "purge", "--help")
    assert code == 0
    text = capsys.readouterr().out
    for flag in ("--tenant", "--model", "--older-than", "--inventory", "--json", "--timeout"):
        assert flag in text


@pytest.mark.parametrize("older_than", ["", "0", "3600", "45s", "90m", "12h", "7d", "2w"])
def test_request_carries_the_extra_vars_and_the_playbook(
    project: Path, artifacts: Path, fake_runs: _FakeRuns, older_than: str
) -> None:
    code, _unused, err = _purge(
        project, artifacts, "--tenant", TENANT, "--model", "llama-4-scout",
        "--older-than", older_than, "--limit", "node1",
    )  # fmt: skip
    assert code == ExitCode.OK, err
    [request] = fake_runs.requests
    assert request.action == "cache_purge"
    assert request.playbook == project / "playbooks" / "cache_purge.yml"
    assert request.extra_vars == {
        "cache_purge_tenant": TENANT,
        "cache_purge_model": "llama-4-scout",
        "cache_purge_older_than": older_than,
    }
    assert request.options.limit == "node1"
    assert request.options.inventory == (str(project / "inventories" / "local"),)
    assert request.options.extra_vars_files == ()  # no file written for the purge's own vars


def test_model_and_older_than_default_to_everything(
    project: Path, artifacts: Path, fake_runs: _FakeRuns
) -> None:
    code, _unused, _unused = _purge(project, artifacts, "--tenant", "team-a")
    assert code == ExitCode.OK
    assert fake_runs.requests[0].extra_vars == {
        "cache_purge_tenant": "team-a",
        "cache_purge_model": "",
        "cache_purge_older_than": "",
    }


def test_other_actions_send_no_extra_vars(project: Path) -> None:
    request = api.request_for("deploy", project, api.RunOptions(inventory=("inventories/local",)))
    assert request.extra_vars == {}
    assert RunRequest("x", project / "site.yml", project, api.RunOptions()).extra_vars == {}


def test_prints_the_count_and_tenant(project: Path, artifacts: Path, fake_runs: _FakeRuns) -> None:
    code, out, _unused = _purge(project, artifacts, "--tenant", "team-a", "--older-than", "7d")
    assert code == ExitCode.OK
    lines = out.splitlines()
    assert lines[-3].startswith("cache_purge successful (exit 0) in 1.5 s; artifacts: ")
    expected = 'cache purge: deleted 42 entries of tenant "team-a" (every model, older than 7d)'
    assert lines[-1] == expected


@pytest.mark.parametrize(
    ("report", "line"),
    [
        (
            {"deleted": 1, "tenant": "team-a", "model": "llama-4-scout"},
            'cache purge: deleted 1 entry of tenant "team-a" (model "llama-4-scout")',
        ),
        (
            {"deleted": 0, "tenant": "ü\x1b[2J", "model": ""},  # escapes stay off the terminal
            'cache purge: deleted 0 entries of tenant "ü\\u001b[2J" (every model)',
        ),
    ],
)
def test_count_line_wording(
    project: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch, report: dict, line: str
) -> None:
    monkeypatch.setattr(api, "run_playbook", _FakeRuns({"cache_purge": report}))
    code, out, _unused = _purge(project, artifacts, "--tenant", "team-a")
    assert code == ExitCode.OK
    assert out.splitlines()[-1] == line


def test_failed_run_says_no_count_and_keeps_its_exit_code(
    project: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(api, "run_playbook", _FakeRuns({}, ExitCode.HOST_FAILED))
    code, out, _unused = _purge(project, artifacts, "--tenant", "team-a")
    assert code == ExitCode.HOST_FAILED
    assert out.splitlines()[-1].startswith("cache purge: no count was reported")


def test_json_holds_the_count(project: Path, artifacts: Path, fake_runs: _FakeRuns) -> None:
    code, out, _unused = _purge(project, artifacts, "--tenant", "team-a", "--json")
    assert code == ExitCode.OK
    document = json.loads(out)  # one document, no count line after it
    assert document["action"] == "cache_purge"
    assert document["data"]["cache_purge"] == {"deleted": 42, "tenant": "team-a", "model": ""}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", ""], "--tenant: expected a tenant name, got ''"),
        (["--tenant", "   "], "--tenant: expected a tenant name"),
        (["--tenant", "team\na"], "--tenant: expected a name without control characters"),
        (["--tenant", "team\x1b[31m"], "--tenant: expected a name without control characters"),
        (["--tenant", "team\x7f"], "--tenant: expected a name without control characters"),
        (["--tenant", "{{ lookup('pipe', 'id') }}"], "--tenant: expected a name without {{"),
        (["--tenant", "a", "--model", "m\tx"], "--model: expected a name without control"),
        (["--tenant", "a", "--model", "{% if 1 %}"], "--model: expected a name without {{"),
        (["--tenant", "a", "--older-than", "7days"], "--older-than: expected seconds or"),
        (["--tenant", "a", "--older-than", "-5"], "--older-than: expected seconds or"),
        (["--tenant", "a", "--older-than", "1.5h"], "--older-than: expected seconds or"),
        (["--tenant", "a", "--older-than", "7D"], "--older-than: expected seconds or"),
        (["--tenant", "a", "--older-than", "d"], "--older-than: expected seconds or"),
        (["--tenant", "a", "--older-than", "7d\n"], "--older-than: expected seconds or"),
        (["--tenant", "a", "--older-than", "\u0667"], "--older-than: expected seconds or"),
    ],
)
def test_bad_values_are_usage_errors_and_nothing_runs(
    project: Path, artifacts: Path, fake_runs: _FakeRuns, args: list[str], message: str
) -> None:
    code, out, err = _purge(project, artifacts, *args)
    assert code == ExitCode.USAGE == 5
    assert f"onprem-llm cache purge: {message}" in err
    assert out == ""
    assert fake_runs.requests == []
    assert not artifacts.exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cache", "purge", "-i", "inventories/local"], "required: --tenant"),
        (["cache", "purge", "--tenant", "a"], "required: -i/--inventory"),
        (["cache"], "required: ACTION"),
        (["cache", "drop", "--tenant", "a"], "invalid choice: 'drop'"),
    ],
)
def test_parser_rejects_incomplete_commands(
    fake_runs: _FakeRuns, argv: list[str], message: str
) -> None:
    code, _unused, err = run_cli(*argv)
    assert code == ExitCode.USAGE
    assert message in err
    assert fake_runs.requests == []


def test_api_checks_before_looking_for_the_project(tmp_path: Path) -> None:
    options = api.RunOptions(inventory=("inventories/local",))
    with pytest.raises(UsageError, match=r"^--older-than: "):
        api.cache_purge(tmp_path, options, "team-a", older_than="soon")
    assert api.cache_purge_vars("team-a", older_than=3600)["cache_purge_older_than"] == "3600"
    with pytest.raises(UsageError, match=r"^--older-than: "):
        api.cache_purge_vars("team-a", older_than=True)  # type: ignore[arg-type]


def test_real_run_passes_the_values_unchanged_and_over_extra_vars_files(
    project: Path, artifacts: Path, tmp_path: Path
) -> None:
    # A file that names another tenant: the command's own values are passed after it and win.
    extra = tmp_path / "other-tenant.yml"
    extra.write_text("cache_purge_tenant: someone-else\nwrapper_purge_deleted: 7\n")
    code, out, err = _purge(
        project, artifacts, "--tenant", TENANT, "--model", "llama-4-scout", "--older-than",
        "90m", "-e", str(extra), "--json",
    )  # fmt: skip
    assert code == ExitCode.OK, out + err
    document = json.loads(out)
    assert document["data"] == {
        "cache_purge": {"deleted": 7, "tenant": TENANT, "model": "llama-4-scout"},
        "wrapper_purge_older_than": "90m",
    }
    assert document["playbook"] == str(project / "playbooks" / "cache_purge.yml")
    command = json.loads((Path(document["artifact_dir"]) / "command").read_text())["command"]
    values = [command[i + 1] for i, arg in enumerate(command) if arg == "-e"]
    assert values[0] == f"@{extra.resolve()}"
    assert json.loads(values[1]) == {
        "cache_purge_tenant": TENANT,
        "cache_purge_model": "llama-4-scout",
        "cache_purge_older_than": "90m",
    }


def test_real_run_prints_the_count(project: Path, artifacts: Path) -> None:
    code, out, err = _purge(project, artifacts, "--tenant", "team-a", "--limit", "node1")
    assert code == ExitCode.OK, out + err
    assert out.splitlines()[-1] == 'cache purge: deleted 3 entries of tenant "team-a" (every model)'
