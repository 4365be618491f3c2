# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""A regular file described by one shell command, with what a module's answer says of it.

The actions that answer a file already right without their module (deb822_repository, get_url)
read the file's stat (_shell_stat's command), its link count and a further read (its content, a
digest) in one command. A module that names a file in its answer (dest) gets, from Ansible's
exit_json, the file's uid, gid, owner, group, mode, state and size (add_path_info); the same
facts are made here from the stat. On a host with SELinux on, the module's answer also has the
file's context, so the command answers nothing there and the module runs.
"""

from __future__ import annotations

import shlex
from typing import Any

from ansible_collections.onprem.llm.plugins.plugin_utils._shell_stat import (
    parse_stat_output,
    stat_command,
)

_SELINUX = "/sys/fs/selinux/enforce"


def regular_file_command(path: str, then: str) -> str:
    """A POSIX shell command that prints the stat line of `path` and, for a regular file (not a
    link), its link count and what `then` prints; it exits non-zero when a command fails or the
    host has SELinux on."""
    quoted = shlex.quote(path)
    return (
        f"[ ! -e {_SELINUX} ] && {{ {stat_command(path, checksum=False)}; }} && "
        f"if [ -f {quoted} ] && [ ! -L {quoted} ]; then "
        f"LC_ALL=C stat -c %h {quoted} && {then}; fi"
    )


def parse_regular_file(path: str, stdout: str) -> tuple[dict[str, Any], list[str]] | None:
    """(the stat as _shell_stat describes it, with `nlink`; the lines `then` printed) for a
    regular file, or None (missing, not a regular file, an answer not plain). Lines end with
    \\r\\n under a become terminal: both ends are taken."""
    lines = stdout.strip().splitlines()
    if len(lines) < 2:
        return None
    status = parse_stat_output(path, lines[0], checksum=False)
    if status is None or not status["exists"] or not status["isreg"]:
        return None
    links = lines[1].strip()
    if not links.isdigit():
        return None
    return {**status, "nlink": int(links)}, [line.strip() for line in lines[2:]]


def path_info(status: dict[str, Any]) -> dict[str, Any]:
    """What AnsibleModule.exit_json adds of a regular file its answer names (add_path_info)."""
    return {
        "uid": status["uid"],
        "gid": status["gid"],
        "owner": status.get("pw_name", str(status["uid"])),
        "group": status.get("gr_name", str(status["gid"])),
        "mode": f"0{int(status['mode'], 8):03o}",
        "state": "hard" if status["nlink"] > 1 else "file",
        "size": status["size"],
    }
