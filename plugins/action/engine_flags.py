# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.engine_flags: the module's check, from the host's cached argument
list, read with shell commands.

The module reads an engine's --help once per engine version and keeps the list on the host; on
every later run it is a Python start on the host to read that file back. Here the engine's
version command runs from the host's shell, the cached list is read with `base64`, and the flags
are checked on the controller with the module's own functions. Anything else (no cached list
yet, a version command that is missing or fails, a flag the engine lacks, options the action
does not judge) runs the module, which reads --help, fails or answers as it does.
"""

from __future__ import annotations

import base64
import binascii
import json
import posixpath
import shlex
from typing import Any

from ansible_collections.onprem.llm.plugins.action.slurp import parse_read_output, read_command
from ansible_collections.onprem.llm.plugins.module_utils._engine_flags import (
    cache_name,
    check,
    dropped_warnings,
    wanted_flags,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import ShellFirstAction

_JUDGED = frozenset(
    {"engine", "help_command", "version_command", "identity", "wanted", "arguments", "optional",
     "cache_dir", "timeout"}
)  # fmt: skip


def version_command(argv: list[str]) -> str:
    """The module's version command as one shell command: stdout only, as the module reads it."""
    quoted = " ".join(shlex.quote(argument) for argument in argv)
    return f"[ -e {shlex.quote(argv[0])} ] && LC_ALL=C.UTF-8 {quoted} 2>/dev/null"


def cached_flags(content_base64: str | None) -> list[str] | None:
    """The flags of a cache file the module wrote, or None when it is not one."""
    if content_base64 is None:
        return None
    try:
        flags = json.loads(base64.b64decode(content_base64))["flags"]
    except (binascii.Error, ValueError, KeyError, TypeError):
        return None
    if not isinstance(flags, list) or not all(isinstance(flag, str) for flag in flags):
        return None
    return flags


def judged_arguments(args: dict[str, Any]) -> dict[str, Any] | None:
    """The task's arguments with the module's defaults, when all are of the types it takes."""
    if set(args) - _JUDGED:
        return None
    judged = {"identity": "", "arguments": {}, "optional": [], "version_command": None, **args}
    version = judged["version_command"]
    if not (
        isinstance(judged.get("engine"), str)
        and isinstance(judged["identity"], str)
        and isinstance(judged.get("wanted"), dict)
        and isinstance(judged["arguments"], dict)
        and isinstance(judged["optional"], list)
        and isinstance(judged.get("cache_dir"), str)
        and posixpath.isabs(judged["cache_dir"])
        and "$" not in judged["cache_dir"]
        and (version is None or (isinstance(version, list) and version))
    ):
        return None
    return judged


class ActionModule(ShellFirstAction):
    module = "onprem.llm.engine_flags"

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        judged = judged_arguments(args)
        if judged is None:
            return None
        version = judged["identity"]
        if judged["version_command"]:
            printed = self.shell_stdout(
                version_command([str(a) for a in judged["version_command"]])
            )
            if printed is None:
                return None
            version = printed.strip()
        cache_file = posixpath.join(
            judged["cache_dir"], cache_name(judged["engine"], judged["identity"], version)
        )
        read = self.shell_stdout(read_command(cache_file))
        flags = cached_flags(parse_read_output(read) if read is not None else None)
        if flags is None:
            return None
        wanted = wanted_flags(judged["wanted"], judged["arguments"])
        result = check(wanted, judged["optional"], flags)
        if result.missing:
            return None
        answer: dict[str, Any] = {
            "changed": False,
            "checked": True,
            "version": version,
            "dropped": result.dropped,
            "flags": len(flags),
        }
        warnings = dropped_warnings(result, wanted, f"{judged['engine']} {version}".strip())
        if warnings:
            answer["warnings"] = warnings
        return answer
