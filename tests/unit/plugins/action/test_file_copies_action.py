"""The file_copies action run by ansible-playbook on localhost: copies already right are
answered by one shell command; whatever needs a change, or cannot be judged, runs the module.

Whether the module ran is read from ansible-playbook -vvv, which names each module file it
sends ("Using module file .../file_copies.py").
"""

from __future__ import annotations

import grp
import os
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.onprem.llm.plugins.action.file_copies import judged_paths

from tests.unit.conftest import play_recap, run_local_play

GROUP = grp.getgrgid(os.getgid()).gr_name


def copies_task(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "onprem.llm.file_copies": {
            "service": "the test service",
            "directory": str(tmp_path / "copies"),
            "group": GROUP,
            "files": [
                {"src": str(tmp_path / "host.crt"), "name": "server.crt", "mode": "0644"},
                {"src": str(tmp_path / "host.key"), "name": "server.key", "mode": "0640"},
            ],
            **extra,
        }
    }


def run(tmp_path: Path, task: dict[str, Any], *args: str) -> tuple[str, bool]:
    """The play's recap line, and whether the module ran."""
    result = run_local_play(tmp_path, [task], "-vvv", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return play_recap(result), "file_copies.py" in "".join(
        line for line in result.stdout.splitlines() if line.startswith("Using module file")
    )


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    (tmp_path / "host.crt").write_text("certificate\n")
    (tmp_path / "host.key").write_text("key\n")
    return tmp_path


def test_copies_already_right_are_answered_without_the_module(sources: Path) -> None:
    recap, module_ran = run(sources, copies_task(sources))
    assert "changed=1" in recap and module_ran
    for arguments in ([], ["--check"]):
        recap, module_ran = run(sources, copies_task(sources), *arguments)
        assert "changed=0" in recap and not module_ran, recap


@pytest.mark.parametrize(
    "drift",
    ["source-renewed", "copy-mode", "directory-mode", "copy-missing"],
)
def test_any_drift_runs_the_module_which_puts_it_right(sources: Path, drift: str) -> None:
    run(sources, copies_task(sources))
    copies = sources / "copies"
    if drift == "source-renewed":
        (sources / "host.key").write_text("renewed key\n")
    elif drift == "copy-mode":
        (copies / "server.key").chmod(0o644)
    elif drift == "directory-mode":
        copies.chmod(0o755)
    else:
        (copies / "server.crt").unlink()
    recap, module_ran = run(sources, copies_task(sources))
    assert module_ran and "changed=1" in recap, recap
    recap, module_ran = run(sources, copies_task(sources))
    assert not module_ran and "changed=0" in recap, recap
    assert (copies / "server.key").read_text() == (sources / "host.key").read_text()


def test_a_link_in_place_of_a_copy_is_left_to_the_module(sources: Path) -> None:
    run(sources, copies_task(sources))
    (sources / "copies" / "server.crt").unlink()
    (sources / "copies" / "server.crt").symlink_to(sources / "host.crt")
    _recap, module_ran = run(sources, copies_task(sources))
    assert module_ran


def test_a_missing_source_fails_through_the_module(sources: Path) -> None:
    (sources / "host.key").unlink()
    result = run_local_play(sources, [copies_task(sources)])
    assert result.returncode != 0
    assert "which this host does not have" in result.stdout, result.stdout


def test_arguments_not_plain_enough_are_left_to_the_module() -> None:
    base = {"directory": "/etc/x", "group": "prometheus"}
    item = {"src": "/etc/onprem-llm/pki/host.key", "name": "server.key", "mode": "0640"}
    assert judged_paths({**base, "files": [item]}) == [
        ("/etc/x", False),
        ("/etc/onprem-llm/pki/host.key", True),
        ("/etc/x/server.key", True),
    ]
    assert judged_paths({**base, "files": [{**item, "mode": "u=rw"}]}) is None
    assert judged_paths({**base, "files": [{**item, "name": "../server.key"}]}) is None
    assert judged_paths({**base, "files": [{**item, "src": "relative.key"}]}) is None
    assert judged_paths({**base, "directory_mode": "rwx", "files": [item]}) is None
