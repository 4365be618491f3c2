# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.command: ansible.builtin.command, run by the host's shell.

The module is a Python start on the host around one program; most of the roles' commands read
state on every run. Given argv or cmd (with strip_empty_ends, expand_argument_vars), the program
runs from the host's POSIX shell with `exec`, its arguments quoted, and the answer has the module's
keys and meaning (rc, stdout, stderr, cmd, start, end, delta, msg; failed with "non-zero return
code"). stdin reaches the program through `base64 -d` (a secret is never on a command line), and
a plain creates or removes path is tested first, as the module skips. Anything the shell would
do differently runs the module with the task's arguments: check mode (the module skips), chdir,
a creates or removes pattern, an argument the module would expand ($VAR, ~), a task
environment, async, a program the shell cannot find (the module's error names it).
"""

from __future__ import annotations

import base64
import datetime
import re
import shlex
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import ShellFirstAction

_MARK = "onprem-llm-command-not-found"
_SKIP_MARK = "onprem-llm-command-skipped"
# The module's arguments the shell runs alike; any other one set means the module runs.
_INPUT = frozenset({"stdin", "stdin_add_newline", "creates", "removes"})
_JUDGED = frozenset({"argv", "cmd", "strip_empty_ends", "expand_argument_vars"})
# A creates or removes path the module would take as it is: absolute, not a glob pattern, nothing
# it would expand.
_PLAIN_PATH = re.compile(r"^/[^*?\[~$\0]*$")


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


def command_input(args: dict[str, Any]) -> tuple[bytes | None, str | None, str | None] | None:
    """The program's stdin as the module gives it (None: none), and the creates and removes
    paths; None when the shell cannot do as the module does."""
    stdin, creates, removes = args.get("stdin"), args.get("creates"), args.get("removes")
    try:
        add_newline = boolean(args.get("stdin_add_newline", True), strict=True)
    except TypeError:
        return None
    if stdin is not None and (not isinstance(stdin, str) or not stdin):
        return None
    for path in (creates, removes):
        if path is not None and not (isinstance(path, str) and _PLAIN_PATH.match(path)):
            return None
    data = None if stdin is None else (stdin + ("\n" if add_newline else "")).encode()
    return data, creates, removes


def shell_command(
    argv: list[str],
    stdin: bytes | None = None,
    creates: str | None = None,
    removes: str | None = None,
) -> str:
    """Runs argv in place of the shell, given stdin, unless creates exists or removes does not
    (the skip mark then); prints the not-found mark when the shell cannot find the program."""
    program = shlex.quote(argv[0])
    command = " ".join(shlex.quote(item) for item in argv)
    steps = []
    if creates is not None:
        path = shlex.quote(creates)
        steps.append(f"if [ -e {path} ] || [ -L {path} ]; then echo {_SKIP_MARK}; exit 0; fi; ")
    if removes is not None:
        path = shlex.quote(removes)
        steps.append(f"if [ ! -e {path} ] && [ ! -L {path} ]; then echo {_SKIP_MARK}; exit 0; fi; ")
    if stdin is None:
        steps.append(f"if command -v {program} >/dev/null 2>&1; then exec {command}; fi; ")
    else:
        encoded = base64.b64encode(stdin).decode("ascii")
        steps.append(
            f"if command -v {program} >/dev/null 2>&1 && command -v base64 >/dev/null 2>&1; "
            f"then printf '%s' {encoded} | base64 -d | {command}; exit; fi; "
        )
    return "".join(steps) + f"echo {_MARK}"


def skipped_result(argv: list[str], creates: str | None, removes: str | None) -> dict[str, Any]:
    """The module's answer when creates exists, or else removes does not."""
    if creates is not None:
        msg, stdout = (
            f"Did not run command since '{creates}' exists",
            f"skipped, since {creates} exists",
        )
    else:
        msg = f"Did not run command since '{removes}' does not exist"
        stdout = f"skipped, since {removes} does not exist"
    return {
        "changed": False,
        "stdout": stdout,
        "stderr": "",
        "stdout_lines": [stdout],
        "stderr_lines": [],
        "rc": 0,
        "cmd": argv,
        "start": None,
        "end": None,
        "delta": None,
        "msg": msg,
    }


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
        judged = {key: value for key, value in args.items() if key not in _INPUT}
        argv, given = command_argv(judged), command_input(args)
        if argv is None or given is None:
            return None
        if self._play_context.check_mode or self._compute_environment_string():
            return None
        start = datetime.datetime.now()
        # On stdin, as pipelined modules are: a command alone would get a terminal with become
        # over ssh, and the program's stderr would end in its stdout.
        run = self._low_level_execute_command(
            "/bin/sh",
            in_data=shell_command(argv, *given).encode("utf-8", "surrogateescape"),
            sudoable=True,
        )
        end = datetime.datetime.now()
        printed = str(run.get("stdout", "")).strip() if run.get("rc") == 0 else None
        if not isinstance(run.get("rc"), int) or printed == _MARK:
            return None
        if printed == _SKIP_MARK and (given[1] is not None or given[2] is not None):
            return skipped_result(argv, given[1], given[2])
        strip = boolean(args.get("strip_empty_ends", True), strict=True)
        return command_result(argv, run, start, end, strip)
