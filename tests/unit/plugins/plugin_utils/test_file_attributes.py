"""When the copy action may answer for the file module: the stat it made shows nothing to do."""

from __future__ import annotations

from typing import Any

import pytest
from ansible_collections.onprem.llm.plugins.plugin_utils._file_attributes import (
    unchanged_file_result,
)

# What ansible.builtin.stat returns for /etc/chrony/chrony.conf (follow=False, no size).
STATUS = {
    "exists": True,
    "isreg": True,
    "path": "/etc/chrony/chrony.conf",
    "mode": "0644",
    "pw_name": "root",
    "gr_name": "root",
    "uid": 0,
    "gid": 0,
    "checksum": "2a5aeecc61dc98c4d780b14b330e3282d3e6f1c2",
}
# What the copy action gives the file module after a matching checksum.
FILE_ARGS = {
    "dest": "/etc/chrony/chrony.conf",
    "_original_basename": "chrony.conf.j2",
    "recurse": False,
    "state": "file",
    "owner": "root",
    "group": "root",
    "mode": "0644",
}


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"mode": 0o644},
        {"mode": "644"},
        {"owner": 0, "group": "0"},
        {"owner": None, "group": None, "mode": None},
        {"mode": "u=rwX,go=rX"},
        {"mode": "a=r,u+w"},
    ],
    ids=[
        "names-and-octal-string",
        "mode-number",
        "mode-without-zero",
        "ids",
        "nothing-asked",
        "symbolic",
        "symbolic-added",
    ],
)
def test_a_file_with_the_asked_owner_group_and_mode_needs_no_file_module(
    change: dict[str, Any],
) -> None:
    result = unchanged_file_result({**FILE_ARGS, **change}, STATUS)
    assert result is not None
    assert (result["changed"], result["path"], result["dest"]) == (
        False,
        STATUS["path"],
        STATUS["path"],
    )
    assert (result["mode"], result["owner"], result["group"], result["state"]) == (
        "0644",
        "root",
        "root",
        "file",
    )


@pytest.mark.parametrize(
    ("change", "status_change"),
    [
        ({"mode": "0640"}, {}),
        ({"owner": "prometheus"}, {}),
        ({"group": "adm"}, {}),
        ({"mode": "u=rwx,go=rx"}, {}),
        ({"mode": "u=rwX,go=rX"}, {"mode": "0744"}),
        ({"mode": "=rw"}, {}),
        ({"mode": "preserve"}, {}),
        ({"setype": "etc_t"}, {}),
        ({"attributes": "+i"}, {}),
        ({"state": "directory"}, {}),
        ({"dest": "/etc/chrony"}, {}),
        ({}, {"exists": False}),
        ({}, {"isreg": False, "islnk": True}),
    ],
    ids=[
        "other-mode",
        "other-owner",
        "other-group",
        "symbolic-other-mode",
        "symbolic-X-on-an-executable",
        "symbolic-without-who",
        "preserve",
        "selinux",
        "attributes",
        "directory",
        "other-path",
        "absent",
        "link",
    ],
)
def test_anything_the_file_module_could_change_runs_it(
    change: dict[str, Any], status_change: dict[str, Any]
) -> None:
    assert unchanged_file_result({**FILE_ARGS, **change}, {**STATUS, **status_change}) is None


def test_without_a_stat_of_that_file_the_file_module_runs() -> None:
    assert unchanged_file_result(FILE_ARGS, None) is None


def test_a_file_copied_into_a_directory_is_judged_by_its_own_stat() -> None:
    """A recursive copy gives the file module the directory and the file's name in it."""
    into_directory = {**FILE_ARGS, "dest": "/etc/chrony/", "_original_basename": "chrony.conf"}
    result = unchanged_file_result(into_directory, STATUS)
    assert result is not None and result["path"] == STATUS["path"]
    other_file = {**into_directory, "_original_basename": "sources.conf"}
    assert unchanged_file_result(other_file, STATUS) is None
