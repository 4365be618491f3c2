"""The runner enables the onprem.llm.audit_log callback beside the callbacks a run already has,
and leaves where its records go to the environment or ansible.cfg when they say."""

from __future__ import annotations

from pathlib import Path

import pytest

from onprem_llm.runner import AUDIT_CALLBACK, AUDIT_LOG_ENV, RunOptions, RunRequest, _child_env


@pytest.fixture
def bare(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project dir without ansible.cfg, a home without one, nothing set in the environment."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_CALLBACKS_ENABLED", AUDIT_LOG_ENV):
        monkeypatch.delenv(name, raising=False)
    project = tmp_path / "project"
    project.mkdir()
    return project


def _env(project: Path, **env: str) -> dict[str, str]:
    request = RunRequest("deploy", project / "site.yml", project, RunOptions(), env=env)
    return _child_env(request)


def test_enables_the_callback_and_names_the_default_file(bare: Path) -> None:
    env = _env(bare)
    if Path("/etc/ansible/ansible.cfg").is_file():  # a machine-wide config may add callbacks
        assert env["ANSIBLE_CALLBACKS_ENABLED"].endswith(AUDIT_CALLBACK)
    else:
        assert env["ANSIBLE_CALLBACKS_ENABLED"] == AUDIT_CALLBACK
    assert env[AUDIT_LOG_ENV] == str(Path.home() / ".ansible" / "onprem-llm-audit.jsonl")


def test_keeps_the_callbacks_and_log_path_of_the_projects_ansible_cfg(bare: Path) -> None:
    (bare / "ansible.cfg").write_text(
        "[defaults]\ncallbacks_enabled = ansible.posix.profile_tasks ; timings\n"
        "[callback_audit_log]\npath = /var/log/onprem-llm/audit.jsonl\n"
    )
    env = _env(bare)
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == f"ansible.posix.profile_tasks,{AUDIT_CALLBACK}"
    assert AUDIT_LOG_ENV not in env  # the callback reads the path from ansible.cfg


def test_merges_with_the_environment_without_duplicates(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANSIBLE_CALLBACKS_ENABLED", f"{AUDIT_CALLBACK}, community.general.say")
    monkeypatch.setenv(AUDIT_LOG_ENV, "/srv/audit/runs.jsonl")
    env = _env(bare)
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == f"{AUDIT_CALLBACK},community.general.say"
    assert AUDIT_LOG_ENV not in env  # inherited from this process as it is


def test_merges_with_the_requests_own_callbacks(bare: Path) -> None:
    env = _env(bare, ANSIBLE_CALLBACKS_ENABLED="ansible.posix.timer")
    assert env["ANSIBLE_CALLBACKS_ENABLED"] == f"ansible.posix.timer,{AUDIT_CALLBACK}"
