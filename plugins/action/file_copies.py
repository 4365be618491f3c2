# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin of onprem.llm.file_copies: copies already right are answered by one shell
command.

The module is a Python start on the host for every service of every run. One shell command
reads the directory, each source and each copy (coreutils stat, sha1sum); when the directory is
root's with the group and mode asked and every copy holds its source's content with owner root,
the group and its mode, the answer is the module's for nothing to do. Anything else (a copy to
write, a source missing, a mode not in octal, a link, an error) runs the module.
"""

from __future__ import annotations

import os
from typing import Any

from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import ShellFirstAction
from ansible_collections.onprem.llm.plugins.plugin_utils._shell_stat import (
    parse_stat_output,
    stat_command,
)

_SEPARATOR = "onprem-llm-file-copies-next"


def _octal(mode: Any) -> int | None:
    if not isinstance(mode, str) or not mode.isdigit():
        return None
    try:
        return int(mode, 8)
    except ValueError:
        return None


def judged_paths(args: dict[str, Any]) -> list[tuple[str, bool]] | None:
    """The paths to read (with whether their SHA-1 is needed): the directory, then each source
    and its copy; None when the arguments are not plain enough to judge."""
    directory, files = args.get("directory"), args.get("files")
    if not (isinstance(directory, str) and os.path.isabs(directory)) or not isinstance(
        args.get("group"), str
    ):
        return None
    if _octal(args.get("directory_mode", "0750")) is None or not isinstance(files, list):
        return None
    paths = [(directory, False)]
    for item in files:
        if not isinstance(item, dict) or set(item) != {"src", "name", "mode"}:
            return None
        source, name = item["src"], item["name"]
        if not (isinstance(source, str) and os.path.isabs(source)) or _octal(item["mode"]) is None:
            return None
        if not isinstance(name, str) or not name or "/" in name or name in (".", ".."):
            return None
        paths += [(source, True), (os.path.join(directory, name), True)]
    return paths


def read_command(paths: list[tuple[str, bool]]) -> str:
    return f" && echo {_SEPARATOR} && ".join(stat_command(path, digest) for path, digest in paths)


def _owned(status: dict[str, Any] | None, group: str, mode: int, kind: str) -> bool:
    return (
        status is not None
        and status.get(kind) is True
        and status["uid"] == 0
        and group in (status.get("gr_name"), str(status["gid"]))
        and int(status["mode"], 8) == mode
    )


def already_copied(args: dict[str, Any], paths: list[tuple[str, bool]], stdout: str) -> bool:
    """Whether the module would find nothing to do, from read_command's output."""
    parts = stdout.replace("\r", "").split(f"{_SEPARATOR}\n")
    if len(parts) != len(paths):
        return False
    statuses = [
        parse_stat_output(path, part, digest)
        for (path, digest), part in zip(paths, parts, strict=True)
    ]
    group = args["group"]
    if not _owned(statuses[0], group, int(args.get("directory_mode", "0750"), 8), "isdir"):
        return False
    for index, item in enumerate(args["files"]):
        source, copy = statuses[1 + 2 * index], statuses[2 + 2 * index]
        if source is None or not source.get("isreg"):
            return False
        if not _owned(copy, group, int(item["mode"], 8), "isreg"):
            return False
        if copy["checksum"] != source["checksum"] or not copy["checksum"]:
            return False
    return True


class ActionModule(ShellFirstAction):
    module = "onprem.llm.file_copies"

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        paths = judged_paths(args)
        read = self.shell_stdout(read_command(paths)) if paths is not None else None
        if paths is None or not read or not already_copied(args, paths, read):
            return None
        return {"changed": False, "copied": [], "missing": []}
