# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.command: ansible.builtin.command, run by the host's shell.

The module is a Python start on the host around one program; most of the roles' commands read
state on every run. Given argv or cmd (with strip_empty_ends, expand_argument_vars), the program
runs from the host's POSIX shell with `exec`, its arguments quoted, and the answer has the module's
keys and meaning (rc, stdout, stderr, cmd, start, end, delta, msg; failed with "non-zero return
code"). Anything the shell would do differently runs the module with the task's arguments:
check mode (the module skips), stdin, chdir, creates, removes, an argument the module would
expand ($VAR, ~), a task environment, async, a program the shell cannot find (the module's
error names it).
"""

from __future__ import annotations

import datetime
import shlex
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import ShellFirstAction

_MARK = "onprem-llm-command-not-found"
# The module's arguments the shell runs alike; any other one set means the module runs.
_JUDGED = frozenset({"argv", "cmd", "strip_empty_ends", "expand_argument_vars"})


def command_argv(args: dict[str, Any]) -> list[str] | None:
    """The program and its arguments as the module would run them, or None for the module."""
    if set(args) - _JUDGED or ("argv" in args) == ("cmd" in args):
        return None
    try:
        expand = boolean(args.get("expand_argument_vars", True), strict=True)
        boolean(args.get("strip_empty_ends", True), strict=True)
    except TypeError:
        return None
    if "cmd" in args:
        if not isinstance(args["cmd"], str):
            return None
        try:
            argv = shlex.split(args["cmd"])
        except ValueError:
            return None
    else:
        argv = args["argv"]
        if not isinstance(argv, list) or not all(isinstance(item, str) for item in argv):
            return None
    if not argv or any("\0" in item for item in argv):
        return None
    # The module expands $VAR and ~ in each argument, with the host's environment.
    if expand and any("$" in item or item.startswith("~") for item in argv):
        return None
    return argv


def shell_command(argv: list[str]) -> str:
    """Runs argv in place of the shell; prints the mark when the shell cannot find the program."""
    program = shlex.quote(argv[0])
    return (
        f"if command -v {program} >/dev/null 2>&1; "
        f"then exec {' '.join(shlex.quote(item) for item in argv)}; fi; echo {_MARK}"
    )


def command_result(
    argv: list[str],
    run: dict[str, Any],
    start: datetime.datetime,
    end: datetime.datetime,
    strip: bool,
) -> dict[str, Any]:
    """The module's answer for a program that ran and gave `run` (rc, stdout, stderr)."""
    stdout, stderr = str(run.get("stdout", "")), str(run.get("stderr", ""))
    if strip:
        stdout, stderr = stdout.rstrip("\r\n"), stderr.rstrip("\r\n")
    answer: dict[str, Any] = {
        "changed": True,
        "rc": run["rc"],
        "stdout": stdout,
        "stderr": stderr,
        "stdout_lines": stdout.splitlines(),
        "stderr_lines": stderr.splitlines(),
        "cmd": argv,
        "start": str(start),
        "end": str(end),
        "delta": str(end - start),
        "msg": "",
    }
    if run["rc"] != 0:
        answer.update(failed=True, msg="non-zero return code")
    return answer


class ActionModule(ShellFirstAction):
    module = "ansible.legacy.command"

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        argv = command_argv(args)
        if argv is None or self._play_context.check_mode or self._compute_environment_string():
            return None
        start = datetime.datetime.now()
        # On stdin, as pipelined modules are: a command alone would get a terminal with become
        # over ssh, and the program's stderr would end in its stdout.
        run = self._low_level_execute_command(
            "/bin/sh",
            in_data=shell_command(argv).encode("utf-8", "surrogateescape"),
            sudoable=True,
        )
        end = datetime.datetime.now()
        not_found = run.get("rc") == 0 and str(run.get("stdout", "")).strip() == _MARK
        if not isinstance(run.get("rc"), int) or not_found:
            return None
        strip = boolean(args.get("strip_empty_ends", True), strict=True)
        return command_result(argv, run, start, end, strip)
