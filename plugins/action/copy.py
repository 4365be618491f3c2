# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.copy: ansible.builtin.copy, one shell command for a file already right.

The builtin action stats the destination and, when the content matches, runs the file module to
enforce owner, group and mode. Here the stat's own owner, group and mode answer that when they
already match, so a no-op costs one module call instead of two. Every other path (a change, a
directory, a link followed, attributes or SELinux options) is the builtin's, unchanged.

The builtin action also makes a remote temporary directory before anything else (two commands
on the host, and a third to remove it), which only a file to transfer needs; here it is made
after the stat, when the file differs. A file already right so costs one command on the host.

The destination is described by one shell command (coreutils stat and sha1sum) instead of the
stat module, whose Python start on the host costs far more than the check; a destination the
command cannot describe plainly (a link, a device, an error) goes to the stat module as before.

With `parents`, the directories above a missing destination are made first (one file module
call, only when the file is missing): a drop-in needs no directory task that runs every time.
"""

from __future__ import annotations

import posixpath
from typing import Any

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action.copy import ActionModule as BuiltinCopyAction
from ansible.utils.hashing import checksum as local_checksum
from ansible_collections.onprem.llm.plugins.plugin_utils._file_attributes import (
    unchanged_file_result,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._shell_stat import read_stat


class ActionModule(BuiltinCopyAction):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._remote_stats: dict[str, dict[str, Any]] = {}
        self._parents_mode: Any = None
        self._source: str | None = None

    def _early_needs_tmp_path(self) -> bool:
        # Made in _execute_remote_stat once a file is known to need a transfer.
        return False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        # Options of this action only: the copy module would refuse them.
        parents = boolean(self._task.args.pop("parents", False), strict=True)
        parents_mode = self._task.args.pop("parents_mode", "0755")
        self._parents_mode = parents_mode if parents else None
        return super().run(tmp, task_vars)

    def _make_parents(self, path: str, all_vars: dict[str, Any]) -> None:
        """The directories above `path`, made (or, in check mode, reported) before the copy."""
        parent = posixpath.dirname(path.rstrip("/"))
        if not parent or parent == "/":
            return
        made = self._execute_module(
            module_name="ansible.legacy.file",
            module_args={"path": parent, "state": "directory", "mode": self._parents_mode},
            task_vars=all_vars,
        )
        if made.get("failed"):
            raise AnsibleActionFail(f"could not make {parent} for {path}: {made.get('msg', '')}")
        self._parents_mode = None

    def _execute_remote_stat(
        self,
        path: str,
        all_vars: dict[str, Any],
        follow: bool,
        tmp: Any = None,
        checksum: bool = True,
    ) -> dict[str, Any]:
        status = read_stat(self, path, checksum)
        if status is None:
            status = super()._execute_remote_stat(
                path, all_vars, follow, tmp=tmp, checksum=checksum
            )
        if self._parents_mode is not None and not status.get("exists"):
            self._make_parents(path, all_vars)
        if (
            self._source is not None
            and not status.get("isdir")
            and not self._task.check_mode
            and self._connection._shell.tmpdir is None
            and status.get("checksum") != local_checksum(self._source)
        ):
            self._make_tmp_path()
        # Only a stat that did not follow links describes the file the file module would touch.
        if not follow:
            self._remote_stats[path] = status
        return status

    def _copy_file(
        self,
        source_full: str,
        source_rel: str,
        content: Any,
        content_tempfile: Any,
        dest: str,
        task_vars: dict[str, Any],
        follow: bool,
    ) -> Any:
        self._source = source_full
        try:
            return super()._copy_file(
                source_full, source_rel, content, content_tempfile, dest, task_vars, follow
            )
        finally:
            self._source = None

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
