# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.template: ansible.builtin.template ending in onprem.llm.copy.

The builtin template action renders on the controller and hands the result to the copy action;
here that copy step is onprem.llm.copy, which answers a file that is already right with one
shell command instead of two module calls. Rendering and every argument are the builtin's.
"""

from __future__ import annotations

from typing import Any

from ansible.plugins.action.template import ActionModule as BuiltinTemplateAction

_BUILTIN_COPY = "ansible.legacy.copy"
_COPY = "onprem.llm.copy"


class _ActionLoader:
    """The action loader as the template action sees it: its copy step resolves to ours."""

    def __init__(self, loader: Any) -> None:
        self._loader = loader

    def get(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._loader.get(_COPY if name == _BUILTIN_COPY else name, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


class _SharedLoaders:
    def __init__(self, shared: Any) -> None:
        self._shared = shared
        self.action_loader = _ActionLoader(shared.action_loader)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._shared, name)


class ActionModule(BuiltinTemplateAction):
    def _early_needs_tmp_path(self) -> bool:
        # onprem.llm.copy makes the temporary directory when the rendered file needs a transfer.
        return False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        self._shared_loader_obj = _SharedLoaders(self._shared_loader_obj)
        return super().run(tmp, task_vars)
