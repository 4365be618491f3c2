# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.copy: ansible.builtin.copy, one remote call for a file already right.

The builtin action stats the destination and, when the content matches, runs the file module to
enforce owner, group and mode. Here the stat's own owner, group and mode answer that when they
already match, so a no-op costs one module call instead of two. Every other path (a change, a
directory, a link followed, attributes or SELinux options) is the builtin's, unchanged.
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action.copy import ActionModule as BuiltinCopyAction
from ansible_collections.onprem.llm.plugins.plugin_utils._file_attributes import (
    unchanged_file_result,
)


class ActionModule(BuiltinCopyAction):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._remote_stats: dict[str, dict[str, Any]] = {}

    def _execute_remote_stat(
        self,
        path: str,
        all_vars: dict[str, Any],
        follow: bool,
        tmp: Any = None,
        checksum: bool = True,
    ) -> dict[str, Any]:
        status = super()._execute_remote_stat(path, all_vars, follow, tmp=tmp, checksum=checksum)
        # Only a stat that did not follow links describes the file the file module would touch.
        if not follow:
            self._remote_stats[path] = status
        return status

    def _stat_of(self, file_args: dict[str, Any]) -> dict[str, Any] | None:
        """The stat made of the file the file module would touch: dest, or in a directory dest
        the file named by _original_basename (as the file module resolves it)."""
        dest = str(file_args.get("dest", ""))
        status = self._remote_stats.get(dest)
        basename = file_args.get("_original_basename")
        if (status is None or status.get("isdir")) and basename:
            status = self._remote_stats.get(self._connection._shell.join_path(dest, basename))
        return status

    def _execute_module(
        self, module_name: Any = None, module_args: Any = None, *args: Any, **kwargs: Any
    ) -> Any:
        if module_name == "ansible.legacy.file" and module_args:
            unchanged = unchanged_file_result(module_args, self._stat_of(module_args))
            if unchanged is not None:
                return unchanged
        return super()._execute_module(module_name, module_args, *args, **kwargs)
