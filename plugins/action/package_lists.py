# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.package_lists: the host's package state read once per run.

Every role asks, before its install, whether its packages are already there. On a run that
changes nothing that is one module call per role and host, each paying the interpreter and
module start on the host for one dpkg-query. Here the first call on a host also returns the
state of every package, kept as the host fact onprem_llm_package_state with the run it was read
in; later calls of the same run whose packages that state shows installed are answered on the
controller. Anything else (a package missing or at another version, a `>=` entry that only dpkg
compares, another run's state from a fact cache) runs the module, and a call whose packages are
not all installed drops the state, since the install that follows changes it.
"""

from __future__ import annotations

import os
from typing import Any

from ansible.plugins.action import ActionBase
from ansible_collections.onprem.llm.plugins.module_utils._package_lists import (
    not_installed,
    package_names,
)

STATE_FACT = "onprem_llm_package_state"
FROM_STATE_REASON = (
    "every package is installed at a version it accepts (package state read earlier this run)"
)


def run_id(parent_pid: int, proc: str = "/proc") -> str | None:
    """The ansible-playbook process a task runs in: its pid and start time (Linux).

    Task workers are forked by it, so their parent is it. Without /proc (macOS controllers)
    there is no id and every call runs the module.
    """
    try:
        with open(f"{proc}/{parent_pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # Field 22 of stat(5), the start time, is the 20th after the command name.
    return f"{parent_pid}:{fields[19]}" if len(fields) > 19 else None


def answer_from_state(
    packages: list[str], state: Any, current_run: str | None
) -> dict[str, Any] | None:
    """The module's result for `packages` from this run's package state, or None to ask the host.

    Only `name` and `name=version` entries are judged here; `>=` needs dpkg's version order.
    """
    if (
        current_run is None
        or not isinstance(state, dict)
        or state.get("run") != current_run
        or not isinstance(state.get("installed"), dict)
    ):
        return None
    if any(">" in entry or "<" in entry for entry in packages):
        return None
    if not_installed(packages, state["installed"], lambda _version, _wanted: False):
        return None
    bare_names = {name.split(":", 1)[0] for name in package_names(packages)}
    return {
        "changed": False,
        "installed": True,
        "held": [name for name in state.get("held", []) if name in bare_names],
        "cache_updated": False,
        "reason": FROM_STATE_REASON,
        "missing": [],
    }


def state_after(result: dict[str, Any], current_run: str | None) -> dict[str, Any]:
    """The package state fact after a module call: kept when nothing will be installed."""
    package_state = result.pop("package_state", None)
    if current_run is None or not result.get("installed") or not isinstance(package_state, dict):
        return {"run": None}
    return {"run": current_run, **package_state}


class ActionModule(ActionBase):
    _supports_check_mode = True

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        module_args = dict(self._task.args)
        packages = [str(entry) for entry in module_args.get("packages") or []]
        # A delegated task's facts would land on another host: no state then.
        current_run = None if self._task.delegate_to else run_id(os.getppid())
        state = task_vars.get("ansible_facts", {}).get(STATE_FACT)

        answer = answer_from_state(packages, state, current_run)
        if answer is not None:
            result.update(answer)
            return result

        if current_run is not None:
            module_args["report_state"] = True
        result.update(
            self._execute_module(
                module_name="onprem.llm.package_lists", module_args=module_args, task_vars=task_vars
            )
        )
        if not result.get("failed") and current_run is not None:
            result["ansible_facts"] = {STATE_FACT: state_after(result, current_run)}
        return result
