"""onprem.llm.file run by ansible-playbook on localhost.

The file module is replaced by one that fails (a module named file in the play's library path,
which ansible.legacy.file resolves to first): a run that passes made no file module call. A
directory already right and a path already absent must not need it; anything else must reach
it, and with the real module the result is the builtin's.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest import play_recap, run_local_play


def run_play(
    tmp_path: Path, tasks: list[dict[str, Any]], *args: str, file_module: bool = False
) -> subprocess.CompletedProcess[str]:
    return run_local_play(tmp_path, tasks, *args, failing_modules=() if file_module else ("file",))


def directory(path: Path, **extra: Any) -> dict[str, Any]:
    owner = {"owner": "root", "group": "root"} if os.getuid() == 0 else {}
    return {
        "onprem.llm.file": {"path": str(path), "state": "directory", "mode": "0750", **owner}
        | extra,
        "register": "made",
    }


SHOW = {"ansible.builtin.debug": {"var": "made"}}


def test_a_directory_is_made_by_the_module_then_answered_without_it(tmp_path: Path) -> None:
    path = tmp_path / "etc" / "onprem-llm"
    (tmp_path / "etc").mkdir()
    missing = run_play(tmp_path, [directory(path)])
    assert missing.returncode != 0 and "the file module was called" in missing.stdout

    first = run_play(tmp_path, [directory(path)], file_module=True)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "changed=1" in play_recap(first)
    assert stat.S_IMODE(path.stat().st_mode) == 0o750

    for mode in ([], ["--check", "--diff"]):
        again = run_play(tmp_path, [directory(path), SHOW], *mode)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "ok=2    changed=0" in play_recap(again), again.stdout
        assert '"state": "directory"' in again.stdout and '"mode": "0750"' in again.stdout


@pytest.mark.parametrize(
    "extra",
    [{"mode": "0755"}, {"owner": "4242"}, {"group": "4242"}, {"recurse": True}],
    ids=["mode", "owner", "group", "recurse"],
)
def test_anything_to_change_or_not_judged_goes_to_the_module(
    tmp_path: Path, extra: dict[str, Any]
) -> None:
    path = tmp_path / "state"
    path.mkdir(mode=0o750)
    path.chmod(0o750)
    result = run_play(tmp_path, [directory(path, **extra)])
    assert result.returncode != 0
    assert "the file module was called" in result.stdout


def test_a_symbolic_mode_is_judged_as_for_a_directory(tmp_path: Path) -> None:
    """X is execute for a directory: u=rwX,go=rX on a 0755 directory changes nothing."""
    path = tmp_path / "models"
    path.mkdir()
    path.chmod(0o755)
    result = run_play(tmp_path, [directory(path, mode="u=rwX,go=rX")])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "changed=0" in play_recap(result)


def test_a_file_or_link_where_a_directory_is_asked_goes_to_the_module(tmp_path: Path) -> None:
    (tmp_path / "plain").write_text("x\n")
    (tmp_path / "target").mkdir(mode=0o750)
    (tmp_path / "link").symlink_to(tmp_path / "target")
    for name in ("plain", "link"):
        result = run_play(tmp_path, [directory(tmp_path / name)])
        assert result.returncode != 0, name
        assert "the file module was called" in result.stdout, name


def test_absent_is_answered_when_the_path_is_gone_and_removed_by_the_module_otherwise(
    tmp_path: Path,
) -> None:
    old = tmp_path / "old.conf"
    task = {"onprem.llm.file": {"path": str(old), "state": "absent"}}
    gone = run_play(tmp_path, [task])
    assert gone.returncode == 0, gone.stdout + gone.stderr
    assert "ok=1    changed=0" in play_recap(gone)

    old.write_text("x\n")
    present = run_play(tmp_path, [task])
    assert present.returncode != 0 and "the file module was called" in present.stdout
    removed = run_play(tmp_path, [task], file_module=True)
    assert removed.returncode == 0 and "changed=1" in play_recap(removed)
    assert not old.exists()

    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    link = run_play(
        tmp_path, [{"onprem.llm.file": {"path": str(tmp_path / "dangling"), "state": "absent"}}]
    )
    assert link.returncode != 0 and "the file module was called" in link.stdout
