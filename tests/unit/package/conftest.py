"""A small project (site.yml, playbooks/, inventories/) on local hosts for the wrapper tests."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

PLAYBOOKS = Path(__file__).parent / "playbooks"


def make_project(root: Path, site: str = "site.yml") -> Path:
    (root / "playbooks").mkdir(parents=True)
    (root / "inventories").mkdir()
    shutil.copy(PLAYBOOKS / site, root / "site.yml")
    shutil.copy(PLAYBOOKS / "slow.yml", root / "slow.yml")
    for action in ("validate", "rolling_restart"):
        shutil.copy(PLAYBOOKS / "site.yml", root / "playbooks" / f"{action}.yml")
    for name in ("lab_up.yml", "lab_down.yml", "cache_purge.yml"):
        shutil.copy(PLAYBOOKS / name, root / "playbooks" / name)
    inventory = "\n".join(
        f"{host} ansible_connection=local ansible_python_interpreter={sys.executable}"
        for host in ("node1", "node2")
    )
    (root / "inventories" / "local").write_text(inventory + "\n")
    (root / "inventories" / "lab").write_text(inventory.replace("node", "labnode") + "\n")
    (root / "inventories" / "ghost").write_text(
        # Loopback port 9 refuses connections: an unreachable host without any network.
        "ghost ansible_host=127.0.0.1 ansible_port=9 ansible_connection=ssh\n"
    )
    return root


@pytest.fixture(autouse=True)
def audit_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The audit log the runs of one test append to (the runner enables the callback)."""
    path = tmp_path / "audit" / "audit.jsonl"
    monkeypatch.setenv("ONPREM_LLM_AUDIT_LOG", str(path))
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return make_project(tmp_path / "project")


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    return tmp_path / "artifacts"


@pytest.fixture
def slow_project(tmp_path: Path) -> Path:
    """A project whose site.yml sleeps, for cancelling through the CLI."""
    return make_project(tmp_path / "slow-project", site="slow.yml")
