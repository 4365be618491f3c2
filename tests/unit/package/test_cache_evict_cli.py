"""`onprem-llm cache evict REQUEST_ID`: the request it makes, its checks and what it prints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cli_runner import run_cli

from onprem_llm import api
from onprem_llm.results import ExitCode, RunResult
from onprem_llm.runner import RunRequest


class _FakeRuns:
    """Stands in for run_playbook: records each request and answers with a canned report."""

    def __init__(self, report: dict[str, Any]) -> None:
        self.report = report
        self.requests: list[RunRequest] = []

    def __call__(self, request: RunRequest, *args: Any, **kwargs: Any) -> RunResult:
        self.requests.append(request)
        return RunResult(
            action=request.action,
            playbook=str(request.playbook),
            status="successful",
            exit_code=ExitCode.OK,
            rc=0,
            ident="20260101T120000Z-cache-evict-abc123",
            artifact_dir=request.artifact_root / "x",
            duration_s=0.5,
            data={"cache_evict": self.report},
        )


def _evict(project: Path, artifacts: Path, *args: str) -> tuple[int, str, str]:
    return run_cli(
        "cache", "evict", "-i", "inventories/local", "--project-dir", str(project),
        "--artifact-dir", str(artifacts), "--progress", "none", *args,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("report", "line"),
    [
        (
            {"request_id": "req-1", "found": True, "evicted": True},
            'cache evict: deleted the cached answer request "req-1" got, and its vector',
        ),
        (
            {"request_id": "req-1", "found": False, "evicted": False},
            'cache evict: no semantic hit is recorded for request "req-1" (only semantic hits are'
            " recorded, for as long as their answer is cached)",
        ),
    ],
)
def test_evict_runs_its_playbook_with_the_request_id(
    project: Path,
    artifacts: Path,
    monkeypatch: pytest.MonkeyPatch,
    report: dict[str, Any],
    line: str,
) -> None:
    runs = _FakeRuns(report)
    monkeypatch.setattr(api, "run_playbook", runs)
    code, out, err = _evict(project, artifacts, "req-1")
    assert code == ExitCode.OK, err
    [request] = runs.requests
    assert request.action == "cache_evict"
    assert request.playbook == project / "playbooks" / "cache_evict.yml"
    assert request.extra_vars == {"cache_evict_request_id": "req-1"}
    assert out.splitlines()[-1] == line


@pytest.mark.parametrize("request_id", ["", "two words", "{{ lookup('pipe', 'id') }}"])
def test_a_bad_request_id_is_refused_before_any_run(
    project: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch, request_id: str
) -> None:
    runs = _FakeRuns({})
    monkeypatch.setattr(api, "run_playbook", runs)
    code, _out, err = _evict(project, artifacts, request_id)
    assert code == ExitCode.USAGE
    assert err.startswith("onprem-llm cache evict: ")
    assert runs.requests == []
