# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""The stat the copy action needs of its destination, read with one shell command.

ansible.builtin.copy learns whether a file is already right from the stat module: a Python
process on the host that unpacks the module and imports Ansible's module utilities, about a
quarter of a second of the host's CPU, for each file of every run. The same facts (exists, a
directory or a regular file, mode, owner, group, SHA-1) come from coreutils' `stat` and
`sha1sum` in a few milliseconds. Whatever the command cannot describe plainly (a symbolic link,
a device, a host without those tools, any error) is answered None, and the caller asks the stat
module as the builtin does.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import posix_shell

_MARK = "onprem-llm-stat"
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
# coreutils prints this for an id without a name; the stat module then has no name at all.
_NO_NAME = "UNKNOWN"


def stat_command(path: str, checksum: bool) -> str:
    """A POSIX shell command describing `path` in the lines parse_stat_output reads; the SHA-1
    of a regular file with `checksum`."""
    quoted = shlex.quote(path)
    digest = f" && sha1sum < {quoted}" if checksum else ""
    return (
        f"if [ -L {quoted} ]; then echo {_MARK} other; "
        f"elif [ ! -e {quoted} ]; then echo {_MARK} missing; "
        f"elif [ -d {quoted} ]; then "
        f"LC_ALL=C stat -c '{_MARK} directory %a %u %g %s %U %G' {quoted}; "
        f"elif [ -f {quoted} ]; then "
        f"LC_ALL=C stat -c '{_MARK} file %a %u %g %s %U %G' {quoted}{digest}; "
        f"else echo {_MARK} other; fi"
    )


def parse_stat_output(path: str, stdout: str, checksum: bool) -> dict[str, Any] | None:
    """The stat module's answer for `path` (as _execute_remote_stat returns it), or None."""
    lines = stdout.strip().splitlines()
    if not lines or not lines[0].startswith(f"{_MARK} "):
        return None
    words = lines[0].split(" ")
    kind = words[1]
    if kind == "missing" and len(lines) == 1:
        return {"exists": False, "path": path, "checksum": "1"}
    directory = kind == "directory"
    if kind not in ("file", "directory") or len(words) != 8:
        return None
    if len(lines) != (2 if checksum and not directory else 1):
        return None
    mode, uid, gid, size, owner, group = words[2:]
    if not (
        re.fullmatch(r"[0-7]{1,4}", mode) and uid.isdigit() and gid.isdigit() and size.isdigit()
    ):
        return None
    status: dict[str, Any] = {
        "exists": True,
        "path": path,
        "isdir": directory,
        "isreg": not directory,
        "islnk": False,
        "mode": f"{int(mode, 8):04o}",
        "uid": int(uid),
        "gid": int(gid),
        "size": int(size),
        "checksum": "",
    }
    if owner != _NO_NAME:
        status["pw_name"] = owner
    if group != _NO_NAME:
        status["gr_name"] = group
    if checksum and not directory:
        digest = lines[1].split(" ")[0]
        if not _SHA1.match(digest):
            return None
        status["checksum"] = digest
    return status


def read_stat(action: Any, path: str, checksum: bool) -> dict[str, Any] | None:
    """`path` on the action's host as parse_stat_output describes it, or None (no POSIX shell,
    the command failed, or its answer was not plain) for the caller to ask the stat module."""
    if not posix_shell(action):
        return None
    result = action._low_level_execute_command(stat_command(path, checksum), sudoable=True)
    if result.get("rc") != 0:
        return None
    return parse_stat_output(path, str(result.get("stdout", "")), checksum)
