# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Whether a file the copy action found with the right content also has the right attributes.

ansible.builtin.copy (and template, which ends in copy) stats the destination, and when the
checksum matches still runs the file module to enforce owner, group and mode: a second remote
module call for every file of a no-op run. The stat it already made names the owner, group and
mode, so when those are what the task asks for, the file module would change nothing and its
result can be made here. Anything else the file module could change (SELinux context,
attributes, a symbolic mode that would read the umask) is left to it.
"""

from __future__ import annotations

import os
import posixpath
import re
import stat
from collections.abc import Mapping
from typing import Any

from ansible.module_utils.basic import AnsibleModule

# File module options this check does not judge: any of them set means the file module runs.
_UNJUDGED_OPTIONS = ("attributes", "attr", "selevel", "serole", "setype", "seuser")
_OCTAL_MODE = re.compile(r"^0?[0-7]{3,4}$")
# Symbolic modes whose every clause names whom it is for (u=rwX,go=rX): without a who, chmod
# leaves the bits of the umask alone, and the umask that counts is the host's, not ours.
_SYMBOLIC_MODE = re.compile(r"^[ugoa]+[-+=][rwxXstugo]*(,[ugoa]+[-+=][rwxXstugo]*)*$")


def _wanted_mode(mode: Any, current: int, file_type: int = stat.S_IFREG) -> int | None:
    """The mode a task asks for a file of `file_type` now at `current`, as the file module
    computes it; None when it is given in a form not judged here."""
    if isinstance(mode, bool):
        return None
    if isinstance(mode, int):
        return mode
    if isinstance(mode, str) and _OCTAL_MODE.match(mode):
        return int(mode, 8)
    if isinstance(mode, str) and _SYMBOLIC_MODE.match(mode):
        now = os.stat_result((file_type | current, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        return int(AnsibleModule._symbolic_mode_to_octal(now, mode))
    return None


def _matches(wanted: Any, name: Any, number: Any) -> bool:
    return wanted is None or str(wanted) in (str(name), str(number))


def unchanged_file_result(
    file_args: Mapping[str, Any], status: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The file module's result for a file it would leave as it is, or None to run the module.

    `file_args` are the arguments copy gives the file module (state=file, dest, owner, group,
    mode, ...); `status` is the stat copy made of the file they name (follow=False), or None.
    Into a directory (a recursive copy), dest is the directory and _original_basename the file's
    path in it, which the file module joins.
    """
    dest = str(file_args.get("dest", ""))
    names = {dest, posixpath.join(dest, str(file_args.get("_original_basename", "")))}
    if (
        status is None
        or file_args.get("state") != "file"
        or not status.get("exists")
        or not status.get("isreg")
        or status.get("path") not in names
        or any(file_args.get(option) is not None for option in _UNJUDGED_OPTIONS)
    ):
        return None
    if not _attributes_match(file_args, status, stat.S_IFREG):
        return None
    return _unchanged_result(status["path"], "file", status) | {"dest": status["path"]}


def unchanged_directory_result(
    file_args: Mapping[str, Any], status: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """The file module's result for state=directory on a directory it would leave as it is,
    or None to run the module. `status` is read_stat's description of file_args' path."""
    path = file_args.get("path")
    if (
        status is None
        or not status.get("exists")
        or not status.get("isdir")
        or status.get("path") != path
    ):
        return None
    if not _attributes_match(file_args, status, stat.S_IFDIR):
        return None
    return _unchanged_result(path, "directory", status)


def _attributes_match(
    file_args: Mapping[str, Any], status: Mapping[str, Any], file_type: int
) -> bool:
    """Whether the mode, owner and group asked are those the stat found."""
    mode = file_args.get("mode")
    current_mode = int(str(status["mode"]), 8)
    if mode is not None and _wanted_mode(mode, current_mode, file_type) != current_mode:
        return False
    return _matches(file_args.get("owner"), status.get("pw_name"), status.get("uid")) and (
        _matches(file_args.get("group"), status.get("gr_name"), status.get("gid"))
    )


def _unchanged_result(path: Any, state: str, status: Mapping[str, Any]) -> dict[str, Any]:
    """What the file module returns for a path it left as it was."""
    return {
        "changed": False,
        "path": path,
        "state": state,
        "mode": status["mode"],
        "owner": status.get("pw_name"),
        "group": status.get("gr_name"),
        "uid": status.get("uid"),
        "gid": status.get("gid"),
        "size": status.get("size"),
        "diff": {"before": {"path": path}, "after": {"path": path}},
    }
