# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.get_url: ansible.builtin.get_url, answered by one shell command when
the file is already there with the checksum asked.

The module is a Python start on the host for every download of every run, and with force it
downloads again a file that is already right. Given a checksum (algorithm:hex), a destination
that is a regular file whose digest is that checksum, and the owner, group and mode asked, a
download could only bring the same bytes (or fail the checksum): the action answers unchanged
as the module does without force ("file already exists"), from one shell command (coreutils
stat and the algorithm's sum program), force or not. Anything else (no checksum, a checksum
file's URL, a missing or different file, a link, a directory, any option other than url, dest,
checksum, owner, group, mode, force and timeout, async) runs the module with the task's
arguments unchanged.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible.module_utils.urls import mask_url
from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import ShellFirstAction
from ansible_collections.onprem.llm.plugins.plugin_utils._file_attributes import (
    unchanged_file_result,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._shell_file import (
    parse_regular_file,
    path_info,
    regular_file_command,
)

# Algorithm: (coreutils program, hex digits of its digest).
ALGORITHMS = {
    "md5": ("md5sum", 32),
    "sha1": ("sha1sum", 40),
    "sha224": ("sha224sum", 56),
    "sha256": ("sha256sum", 64),
    "sha384": ("sha384sum", 96),
    "sha512": ("sha512sum", 128),
}
_JUDGED = frozenset({"url", "dest", "checksum", "owner", "group", "mode", "force", "timeout"})
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def judged_checksum(args: dict[str, Any]) -> tuple[str, str] | None:
    """(algorithm, lower-case hex digest) when the task asks only what this action judges,
    with a checksum given as algorithm:hex; else None."""
    checksum, dest, url = args.get("checksum"), args.get("dest"), args.get("url")
    if set(args) - _JUDGED or not isinstance(checksum, str) or not isinstance(url, str):
        return None
    # dest is a path the module expands ($VAR, ~): only a plain absolute one is judged.
    if not isinstance(dest, str) or not dest.startswith("/") or "$" in dest:
        return None
    if not dest.isprintable() or dest.endswith("/"):
        return None
    timeout = args.get("timeout", 10)
    if isinstance(timeout, bool) or not (isinstance(timeout, int) or str(timeout).isdigit()):
        return None
    try:
        boolean(args.get("force", False), strict=True)
    except TypeError:
        return None
    algorithm, separator, digest = checksum.partition(":")
    if not separator or algorithm not in ALGORITHMS or not _HEX.match(digest):
        return None
    if len(digest) != ALGORITHMS[algorithm][1]:
        return None
    return algorithm, digest.lower()


def read_command(dest: str, algorithm: str) -> str:
    """The file's stat, link count and digest (`<program> < dest`)."""
    program = ALGORITHMS[algorithm][0]
    return regular_file_command(dest, f"{program} < {shlex.quote(dest)}")


def unchanged_answer(args: dict[str, Any], digest: str, stdout: str) -> dict[str, Any] | None:
    """The module's "file already exists" answer when the read file has the digest, owner,
    group and mode asked; else None."""
    dest = args["dest"]
    read = parse_regular_file(dest, stdout)
    if read is None or len(read[1]) != 1 or read[1][0].split(" ")[0] != digest:
        return None
    status = read[0]
    file_args = {
        "state": "file",
        "dest": dest,
        **{option: args.get(option) for option in ("owner", "group", "mode")},
    }
    if unchanged_file_result(file_args, status) is None:
        return None
    return {
        "changed": False,
        "checksum_dest": None,
        "checksum_src": None,
        "dest": dest,
        "elapsed": 0,
        "msg": "file already exists",
        "url": mask_url(args["url"]),
        **path_info(status),
    }


class ActionModule(ShellFirstAction):
    module = "ansible.legacy.get_url"

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        checksum = judged_checksum(args)
        if checksum is None:
            return None
        algorithm, digest = checksum
        read = self.shell_stdout(read_command(args["dest"], algorithm))
        return unchanged_answer(args, digest, read) if read is not None else None
