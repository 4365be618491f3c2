# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""What the actions that answer a task already right with one shell command share: whether the
host has a POSIX shell for that command, and the builtin module they run otherwise, as
ansible.builtin's normal action would (async included)."""

from __future__ import annotations

from typing import Any

from ansible.utils.vars import merge_hash


def posix_shell(action: Any) -> bool:
    return getattr(action._connection._shell, "SHELL_FAMILY", None) == "sh"


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
