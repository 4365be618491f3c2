"""`onprem-llm erase`: the request it makes and the line it prints from the run's counts."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_cache_purge_cli import _FakeRuns, run_cli

from onprem_llm import api
from onprem_llm.results import ExitCode

COUNTS = {
    "erase_records": {
        "gw-1": {"tenant": "team-c", "records_removed": 3, "files": 2, "dry_run": False},
        "gw-2": {"tenant": "team-c", "records_removed": 2, "files": 1, "dry_run": False},
    },
    "cache_purge": {"deleted": 1, "tenant": "team-c", "model": None},
}


def _erase(project: Path, artifacts: Path, *args: str) -> tuple[int, str, str]:
    return run_cli(
        "erase", "-i", "inventories/local", "--project-dir", str(project),
        "--artifact-dir", str(artifacts), "--progress", "none", *args,
    )  # fmt: skip


def test_erase_runs_its_playbook_and_sums_the_gateways(
    project: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _FakeRuns(COUNTS)
    monkeypatch.setattr(api, "run_playbook", runs)
    code, out, err = _erase(project, artifacts, "--tenant", "team-c")
    assert code == ExitCode.OK, err
    [request] = runs.requests
    assert request.playbook == project / "playbooks" / "erase_tenant.yml"
    assert request.extra_vars == {"erase_tenant": "team-c"}
    assert (
        'erase: tenant "team-c": removed 5 request records and 0 content records on 2 gateways,'
        " deleted 1 cache entry" in out
    )


@pytest.mark.parametrize("tenant", ["", " ", "a\nb"])
def test_a_bad_tenant_is_refused_before_any_run(
    project: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch, tenant: str
) -> None:
    runs = _FakeRuns(COUNTS)
    monkeypatch.setattr(api, "run_playbook", runs)
    code, _unused, err = _erase(project, artifacts, "--tenant", tenant)
    assert code == ExitCode.USAGE and "--tenant" in err, err
    assert runs.requests == []


def test_erasing_a_user_passes_it_and_leaves_the_tenants_cache(
    project: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_counts = {
        "erase_records": {
            "gw-1": {"tenant": "team-c", "records_removed": 2, "content_removed": 2},
            "gw-2": {"tenant": "team-c", "records_removed": 1, "content_removed": 0},
        }
    }
    runs = _FakeRuns(user_counts)
    monkeypatch.setattr(api, "run_playbook", runs)
    code, out, err = _erase(project, artifacts, "--tenant", "team-c", "--user", "u-17")
    assert code == ExitCode.OK, err
    [request] = runs.requests
    assert request.extra_vars == {"erase_tenant": "team-c", "erase_user": "u-17"}
    assert (
        'erase: tenant "team-c", one user: removed 3 request records and 2 content records on 2'
        " gateways; cached answers are the tenant's and stay until their TTL" in out
    )


def test_a_templated_user_is_refused_before_any_run(
    project: Path, artifacts: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = _FakeRuns(COUNTS)
    monkeypatch.setattr(api, "run_playbook", runs)
    code, _unused, err = _erase(
        project, artifacts, "--tenant", "team-c", "--user", "{{ lookup('env') }}"
    )
    assert code == ExitCode.USAGE and "--user" in err, err
    assert runs.requests == []
