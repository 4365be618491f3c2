"""The shell command that describes a copy destination, run by this machine's sh, against the
stat module's answer for the same paths."""

from __future__ import annotations

import hashlib
import os
import subprocess
from pathlib import Path

import pytest
from ansible_collections.onprem.llm.plugins.plugin_utils._shell_stat import (
    parse_stat_output,
    stat_command,
)


def described(path: Path, checksum: bool = True) -> dict | None:
    result = subprocess.run(
        ["/bin/sh", "-c", stat_command(str(path), checksum)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    return parse_stat_output(str(path), result.stdout, checksum)


def test_a_regular_file_as_the_stat_module_describes_it(tmp_path: Path) -> None:
    path = tmp_path / "a file with 'quotes' and $dollars.conf"
    path.write_bytes(b"listen 8001\n")
    path.chmod(0o4751)
    status = described(path)
    assert status == {
        "exists": True,
        "path": str(path),
        "isdir": False,
        "isreg": True,
        "islnk": False,
        "mode": "4751",
        "uid": os.getuid(),
        "gid": os.getgid(),
        "size": 12,
        "pw_name": "root" if os.getuid() == 0 else status["pw_name"],
        "gr_name": status["gr_name"],
        "checksum": hashlib.sha1(b"listen 8001\n").hexdigest(),
    }
    assert described(path, checksum=False)["checksum"] == ""


def test_a_missing_file_and_a_directory(tmp_path: Path) -> None:
    assert described(tmp_path / "absent") == {
        "exists": False,
        "path": str(tmp_path / "absent"),
        "checksum": "1",
    }
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d").chmod(0o2750)
    directory = described(tmp_path / "conf.d")
    assert directory is not None
    assert (directory["exists"], directory["isdir"], directory["isreg"]) == (True, True, False)
    assert (directory["mode"], directory["uid"]) == ("2750", os.getuid())
    assert directory["checksum"] == ""


def test_links_devices_and_unreadable_paths_go_to_the_stat_module(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("x\n")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    assert described(tmp_path / "link") is None
    assert described(tmp_path / "dangling") is None
    assert described(Path("/dev/null")) is None
    # Below a regular file nothing exists: missing, as the stat module says.
    assert described(tmp_path / "target" / "below", checksum=True) == {
        "exists": False,
        "path": str(tmp_path / "target" / "below"),
        "checksum": "1",
    }


@pytest.mark.parametrize(
    "stdout",
    [
        "",
        "something else\n",
        "onprem-llm-stat file 644 0 0 12 root root\n",  # checksum asked, none printed
        "onprem-llm-stat file 644 0 0 12 root root\nnot-a-digest  -\n",
        "onprem-llm-stat file 6a4 0 0 12 root root\n" + "a" * 40 + "  -\n",
        "onprem-llm-stat file 644 0 0 12 two words root\n" + "a" * 40 + "  -\n",
        "onprem-llm-stat missing\nextra\n",
        "onprem-llm-stat fifo\n",
    ],
)
def test_output_not_understood_goes_to_the_stat_module(stdout: str) -> None:
    assert parse_stat_output("/etc/x.conf", stdout, checksum=True) is None


def test_an_id_without_a_name_has_no_name() -> None:
    status = parse_stat_output(
        "/etc/x.conf",
        "onprem-llm-stat file 640 4242 4243 3 UNKNOWN UNKNOWN\n" + "b" * 40 + "  -\n",
        checksum=True,
    )
    assert status is not None
    assert "pw_name" not in status and "gr_name" not in status
    assert (status["uid"], status["gid"], status["mode"]) == (4242, 4243, "0640")
