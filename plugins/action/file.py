# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.file: ansible.builtin.file, answered by one shell command when a
directory or an absence is already as asked.

The file module is a Python start on the host for every directory of every run. A directory
that exists with the owner, group and mode asked, or a path asked absent that does not exist,
is answered from one shell command (coreutils stat). Anything else (a change, a link, a
recursive or SELinux option, another state) runs the module with the same arguments.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import ShellFirstAction
from ansible_collections.onprem.llm.plugins.plugin_utils._file_attributes import (
    unchanged_directory_result,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._shell_stat import read_stat

# Arguments judged here; any other one set means the module runs.
_JUDGED = {
    "directory": frozenset({"path", "state", "owner", "group", "mode"}),
    "absent": frozenset({"path", "state"}),
}


def judged_state(args: dict[str, Any]) -> str | None:
    """directory or absent when the task asks only what this action judges, else None."""
    state = args.get("state")
    judged = _JUDGED.get(state) if isinstance(state, str) else None
    path = args.get("path")
    if judged is None or set(args) - judged:
        return None
    if not isinstance(path, str) or not path.startswith("/"):
        return None
    return state


class ActionModule(ShellFirstAction):
    module = "ansible.legacy.file"

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        state = judged_state(args)
        if state is None:
            return None
        status = read_stat(self, args["path"], checksum=False)
        if state == "absent":
            absent = status is not None and not status["exists"]
            return {"changed": False, "path": args["path"], "state": state} if absent else None
        return unchanged_directory_result(args, status)
