"""onprem.llm.file_copies on real files in a temporary directory."""

from __future__ import annotations

import grp
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.onprem.llm.plugins.modules import file_copies

GROUP = grp.getgrgid(os.getgid()).gr_name


@pytest.fixture
def host(tmp_path: Path) -> dict[str, Any]:
    pki = tmp_path / "pki"
    pki.mkdir()
    (pki / "host.crt").write_text("CERTIFICATE\n")
    (pki / "host.key").write_text("PRIVATE KEY\n")
    (pki / "host.key").chmod(0o600)
    return {
        "service": "node_exporter",
        "directory": str(tmp_path / "node-exporter-tls"),
        "group": GROUP,
        "files": [
            {"src": str(pki / "host.crt"), "name": "server.crt", "mode": "0644"},
            {"src": str(pki / "host.key"), "name": "server.key", "mode": "0640"},
        ],
    }


def run_module(capsys: pytest.CaptureFixture[str], **args: Any) -> tuple[int, dict[str, Any]]:
    with patch_module_args(args), pytest.raises(SystemExit) as info:
        file_copies.main()
    return int(info.value.code or 0), json.loads(capsys.readouterr().out)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_copies_are_made_with_the_group_and_modes_then_left_alone(
    host: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    rc, result = run_module(capsys, **host)
    assert rc == 0, result
    directory = Path(host["directory"])
    assert result["changed"] is True
    assert result["copied"] == [str(directory / "server.crt"), str(directory / "server.key")]
    assert (directory / "server.key").read_text() == "PRIVATE KEY\n"
    assert (mode(directory), mode(directory / "server.crt"), mode(directory / "server.key")) == (
        0o750,
        0o644,
        0o640,
    )
    assert grp.getgrgid((directory / "server.key").stat().st_gid).gr_name == GROUP
    assert "PRIVATE KEY" not in json.dumps(result)

    rc, result = run_module(capsys, **host)
    assert (rc, result["changed"], result["copied"]) == (0, False, [])


def test_a_renewed_certificate_and_a_loosened_mode_are_put_right(
    host: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    run_module(capsys, **host)
    directory = Path(host["directory"])
    Path(host["files"][0]["src"]).write_text("RENEWED CERTIFICATE\n")
    (directory / "server.key").chmod(0o644)
    rc, result = run_module(capsys, **host)
    assert (rc, result["changed"]) == (0, True), result
    assert result["copied"] == [str(directory / "server.crt"), str(directory / "server.key")]
    assert (directory / "server.crt").read_text() == "RENEWED CERTIFICATE\n"
    assert mode(directory / "server.key") == 0o640


def test_a_missing_source_fails_naming_it_before_any_change(
    host: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    Path(host["files"][1]["src"]).unlink()
    rc, result = run_module(capsys, **host)
    assert rc == 1
    assert result["msg"].startswith(
        f"node_exporter serves TLS with {host['files'][1]['src']}, which this host does not have."
    )
    assert not Path(host["directory"]).exists()


def test_check_mode_reports_without_writing_and_returns_missing_sources(
    host: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    Path(host["files"][1]["src"]).unlink()
    rc, result = run_module(capsys, **host, _ansible_check_mode=True)
    assert rc == 0, result
    assert result["changed"] is True
    assert result["missing"] == [host["files"][1]["src"]]
    assert result["copied"] == [os.path.join(host["directory"], "server.crt")]
    assert not Path(host["directory"]).exists()


def test_in_place_rewrites_a_changed_copy_as_the_same_file(
    host: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # vLLM watches its certificate files: a copy replaced by another file loses the watch.
    run_module(capsys, **host, in_place=True)
    copy = Path(host["directory"]) / "server.crt"
    inode = copy.stat().st_ino
    Path(host["files"][0]["src"]).write_text("RENEWED, LONGER CERTIFICATE\n")
    rc, result = run_module(capsys, **host, in_place=True)
    assert (rc, result["copied"]) == (0, [str(copy)]), result
    assert copy.read_text() == "RENEWED, LONGER CERTIFICATE\n"
    assert copy.stat().st_ino == inode
    Path(host["files"][0]["src"]).write_text("SHORT\n")
    run_module(capsys, **host, in_place=True)
    assert (copy.read_text(), copy.stat().st_ino, mode(copy)) == ("SHORT\n", inode, 0o644)
    # Without it a changed copy is a new file, moved over the old one.
    Path(host["files"][0]["src"]).write_text("RENEWED AGAIN\n")
    run_module(capsys, **host)
    assert copy.stat().st_ino != inode
