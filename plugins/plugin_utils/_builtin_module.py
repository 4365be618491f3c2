# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the actions that answer a task already right with one shell command share: whether the
host has a POSIX shell for that command, the builtin module they run otherwise, as
ansible.builtin's normal action would (async included), and ShellFirstAction, the run that
tries the first before the second."""

from __future__ import annotations

import re
from typing import Any

from ansible import constants as C
from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase
from ansible.utils.vars import merge_hash

_PLAIN_INTERPRETER = re.compile(r"^/?[A-Za-z0-9_.+-]+(?:/[A-Za-z0-9_.+-]+)*$")
_DISCOVERY = frozenset({"", "auto", "auto_legacy", "auto_silent", "auto_legacy_silent"})


def posix_shell(action: Any) -> bool:
    return getattr(action._connection._shell, "SHELL_FAMILY", None) == "sh"


def python_interpreter(action: Any, task_vars: dict[str, Any]) -> str | None:
    """The Python a module would run with on the host, as a plain path or name; python3 where
    it would be discovered and is not yet; None when it cannot be named plainly."""
    try:
        configured = C.config.get_config_value("INTERPRETER_PYTHON", variables=task_vars)
        if isinstance(configured, str) and "{{" in configured:
            configured = action._templar.template(configured)
    except (AnsibleError, KeyError, TypeError, ValueError):
        return None
    if configured is None or (isinstance(configured, str) and configured in _DISCOVERY):
        facts = task_vars.get("ansible_facts") or {}
        configured = facts.get("discovered_interpreter_python", "python3")
    if not isinstance(configured, str) or not _PLAIN_INTERPRETER.match(configured):
        return None
    return configured


def run_builtin_module(
    action: Any, result: dict[str, Any], module_name: str, task_vars: dict[str, Any] | None
) -> dict[str, Any]:
    """`result` merged with module_name run on the task's arguments, unchanged."""
    wrap_async = bool(action._task.async_val) and not action._connection.has_native_async
    result = merge_hash(
        result,
        action._execute_module(
            module_name=module_name,
            module_args=dict(action._task.args),
            task_vars=task_vars,
            wrap_async=wrap_async,
        ),
    )
    if not wrap_async:
        action._remove_tmp_path(action._connection._shell.tmpdir)
    return result


class ShellFirstAction(ActionBase):
    """An action that answers from the host's shell what it can judge (shell_answer), and runs
    `module` with the task's arguments for everything else, async included."""

    _supports_check_mode = True
    _supports_async = True
    module = ""

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        result = super().run(tmp, task_vars)
        del tmp
        if not self._task.async_val and posix_shell(self):
            answer = self.shell_answer(dict(self._task.args))
            if answer is not None:
                return merge_hash(result, answer)
        return run_builtin_module(self, result, self.module, task_vars)

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        """The module's answer for `args`, read with shell commands, or None for the module."""
        raise NotImplementedError

    def shell_stdout(self, command: str) -> str | None:
        """What `command` printed when it exited 0, else None."""
        read = self._low_level_execute_command(command, sudoable=True)
        return str(read.get("stdout", "")) if read.get("rc") == 0 else None
