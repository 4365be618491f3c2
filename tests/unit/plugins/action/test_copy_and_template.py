"""onprem.llm.copy and onprem.llm.template run by ansible-playbook on localhost.

The file and stat modules are replaced by ones that fail (modules of those names in the play's
library path, which ansible.legacy.file and ansible.legacy.stat resolve to first): a run that
passes made no such module call. A file already right must need neither; a mode to change must
still reach the file module, and a destination the shell cannot describe plainly (a link) the
stat module.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.unit.conftest import play_recap, run_local_play


def run_play(
    tmp_path: Path,
    tasks: list[dict[str, Any]],
    *args: str,
    file_module: bool = False,
    stat_module: bool = False,
) -> subprocess.CompletedProcess[str]:
    """The play run with the failing file and stat modules, or the real ones where asked."""
    real = {"file": file_module, "stat": stat_module}
    failing = tuple(name for name, wanted in real.items() if not wanted)
    return run_local_play(tmp_path, tasks, *args, failing_modules=failing)


@pytest.fixture
def files(tmp_path: Path) -> list[dict[str, Any]]:
    (tmp_path / "site.conf.j2").write_text("listen {{ 8000 + 1 }}\n")
    return [
        {
            "name": "Write the rendered file",
            "onprem.llm.template": {
                "src": str(tmp_path / "site.conf.j2"),
                "dest": str(tmp_path / "site.conf"),
                "mode": "0640",
            },
        },
        {
            "name": "Write the file's content",
            "onprem.llm.copy": {
                "content": "verbose = false\n",
                "dest": str(tmp_path / "copied.conf"),
                "mode": "0600",
            },
        },
    ]


def test_a_directory_already_right_costs_no_file_module_call(tmp_path: Path) -> None:
    """The engine role's model copy: a directory of files, with a symbolic mode."""
    model = tmp_path / "tiny-model"
    model.mkdir()
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (model / name).write_text(f"{name}\n")
    copy = {
        "name": "Copy the model",
        "onprem.llm.copy": {
            "src": f"{model}/",
            "dest": f"{tmp_path}/store/tiny-model/",
            "mode": "u=rwX,go=rX",
            "directory_mode": "0755",
        },
    }
    first = run_play(tmp_path, [copy])
    assert first.returncode == 0, first.stdout + first.stderr
    assert (tmp_path / "store" / "tiny-model" / "config.json").read_text() == "config.json\n"
    again = run_play(tmp_path, [copy])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ok=1    changed=0" in play_recap(again), again.stdout


def test_files_already_right_cost_no_file_module_call(
    tmp_path: Path, files: list[dict[str, Any]]
) -> None:
    first = run_play(tmp_path, files)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "changed=2" in play_recap(first)
    assert (tmp_path / "site.conf").read_text() == "listen 8001\n"
    assert stat.S_IMODE((tmp_path / "site.conf").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "copied.conf").stat().st_mode) == 0o600

    for mode in ([], ["--check", "--diff"]):
        again = run_play(tmp_path, files, *mode)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "ok=2    changed=0" in play_recap(again), again.stdout


def test_the_builtin_action_would_have_called_the_file_module(
    tmp_path: Path, files: list[dict[str, Any]]
) -> None:
    """The stand-in file module fails as the test needs: the builtin path reaches it."""
    assert run_play(tmp_path, files).returncode == 0
    builtin = [{**files[0], "ansible.builtin.template": files[0]["onprem.llm.template"]}]
    del builtin[0]["onprem.llm.template"]
    result = run_play(tmp_path, builtin, stat_module=True)
    assert result.returncode != 0
    assert "the file module was called" in result.stdout


@pytest.mark.parametrize("task", [0, 1], ids=["template", "copy"])
def test_a_mode_to_change_still_goes_to_the_file_module(
    tmp_path: Path, files: list[dict[str, Any]], task: int
) -> None:
    assert run_play(tmp_path, files).returncode == 0
    changed = files[task]
    action = next(key for key in changed if key.startswith("onprem.llm."))
    changed[action]["mode"] = "0644"
    result = run_play(tmp_path, [changed])
    assert result.returncode != 0
    assert "the file module was called" in result.stdout


@pytest.mark.parametrize("action", ["onprem.llm.template", "onprem.llm.copy"])
def test_parents_are_made_for_a_missing_file_and_cost_nothing_after(
    tmp_path: Path, action: str
) -> None:
    """A drop-in in a directory that does not exist yet, without a directory task."""
    (tmp_path / "limits.conf.j2").write_text("[Service]\nLimitNOFILE={{ 1024 * 64 }}\n")
    dropin = tmp_path / "system" / "haproxy.service.d" / "limits.conf"
    source = {"src": str(tmp_path / "limits.conf.j2")}
    if action == "onprem.llm.copy":
        source = {"content": "[Service]\nLimitNOFILE=65536\n"}
    task = {action: {**source, "dest": str(dropin), "mode": "0644", "parents": True}}

    check = run_play(tmp_path, [task], "--check", file_module=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "changed=1" in play_recap(check)
    assert not (tmp_path / "system").exists()

    first = run_play(tmp_path, [task], file_module=True)
    assert first.returncode == 0, first.stdout + first.stderr
    assert dropin.read_text() == "[Service]\nLimitNOFILE=65536\n"
    for directory in (dropin.parent, dropin.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o755, directory

    # The file is right: no directory is looked at, so the failing file module is never called.
    for mode in ([], ["--check", "--diff"]):
        again = run_play(tmp_path, [task], *mode)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "ok=1    changed=0" in play_recap(again), again.stdout


def test_parents_mode_is_the_mode_of_the_directories_made(tmp_path: Path) -> None:
    dest = tmp_path / "keys" / "host.key"
    task = {
        "onprem.llm.copy": {
            "content": "not a key\n",
            "dest": str(dest),
            "mode": "0600",
            "parents": True,
            "parents_mode": "0700",
        }
    }
    result = run_play(tmp_path, [task], file_module=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert stat.S_IMODE(dest.parent.stat().st_mode) == 0o700


def test_without_parents_a_missing_directory_still_fails(tmp_path: Path) -> None:
    task = {"onprem.llm.copy": {"content": "x\n", "dest": str(tmp_path / "absent" / "x.conf")}}
    result = run_play(tmp_path, [task], file_module=True)
    assert result.returncode != 0
    assert "does not exist" in result.stdout


def test_the_builtin_action_would_have_called_the_stat_module(
    tmp_path: Path, files: list[dict[str, Any]]
) -> None:
    """The stand-in stat module fails as the test needs: the builtin path reaches it."""
    builtin = [{"ansible.builtin.copy": files[1]["onprem.llm.copy"]}]
    result = run_play(tmp_path, builtin, file_module=True)
    assert result.returncode != 0
    assert "the stat module was called" in result.stdout


def test_a_changed_file_is_described_without_the_stat_module(
    tmp_path: Path, files: list[dict[str, Any]]
) -> None:
    assert run_play(tmp_path, files, file_module=True).returncode == 0
    (tmp_path / "copied.conf").write_text("verbose = true\n")
    result = run_play(tmp_path, files, "--diff", file_module=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok=2    changed=1" in play_recap(result), result.stdout
    assert "-verbose = true" in result.stdout and "+verbose = false" in result.stdout
    assert (tmp_path / "copied.conf").read_text() == "verbose = false\n"


def test_a_linked_destination_goes_to_the_stat_module(
    tmp_path: Path, files: list[dict[str, Any]]
) -> None:
    """A link is not described by the shell: the stat module describes it, and the link is
    replaced by the file (follow: false) as the builtin does."""
    (tmp_path / "real.conf").write_text("verbose = false\n")
    (tmp_path / "real.conf").chmod(0o600)
    (tmp_path / "copied.conf").symlink_to(tmp_path / "real.conf")
    refused = run_play(tmp_path, [files[1]])
    assert refused.returncode != 0
    assert "the stat module was called" in refused.stdout
    result = run_play(tmp_path, [files[1]], stat_module=True, file_module=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ok=1    changed=1" in play_recap(result), result.stdout
    assert not (tmp_path / "copied.conf").is_symlink()
    assert (tmp_path / "copied.conf").read_text() == "verbose = false\n"
