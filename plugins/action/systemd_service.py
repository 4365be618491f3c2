# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Action plugin onprem.llm.systemd_service: ansible.builtin.systemd_service, answered by one
`systemctl show` when the unit is already as asked.

The module is a Python start on the host and several systemctl calls, for every service of every
run. A unit that is loaded, needs no daemon reload and already is in the state asked (running
for started, not running for stopped, enabled for enabled) is answered from one `systemctl
show`; anything else (a change, a reload, a mask, a user scope, an unknown unit) runs the module
with the same arguments.
"""

from __future__ import annotations

import shlex
from typing import Any

from ansible.module_utils.parsing.convert_bool import boolean
from ansible_collections.onprem.llm.plugins.plugin_utils._builtin_module import ShellFirstAction

_PROPERTIES = ("LoadState", "ActiveState", "UnitFileState", "NeedDaemonReload")
# The module's arguments this action judges; any other one set means the module runs.
_JUDGED = frozenset({"name", "state", "enabled", "daemon_reload", "daemon_reexec", "scope"})
# As the module reads ActiveState: these are running, and deactivating still needs a stop.
_RUNNING = frozenset({"active", "activating"})
_NOT_RUNNING = frozenset({"inactive", "failed"})


def show_command(unit: str) -> str:
    # With become the command may run on a terminal, where systemctl pages and colours.
    return (
        f"SYSTEMD_COLORS=0 systemctl --no-pager show --property={','.join(_PROPERTIES)}"
        f" -- {shlex.quote(unit)}"
    )


def parse_show(stdout: str) -> dict[str, str]:
    status: dict[str, str] = {}
    for line in stdout.splitlines():
        name, sep, value = line.partition("=")
        if sep and name in _PROPERTIES:
            status[name] = value.strip()
    return status


def already_as_asked(args: dict[str, Any], status: dict[str, str]) -> bool:
    """Whether the module would change nothing for `args` on a unit showing `status`."""
    if set(_PROPERTIES) - status.keys():
        return False
    if status["LoadState"] != "loaded" or status["NeedDaemonReload"] != "no":
        return False
    state = args.get("state")
    if state == "started" and status["ActiveState"] not in _RUNNING:
        return False
    if state == "stopped" and status["ActiveState"] not in _NOT_RUNNING:
        return False
    enabled = args.get("enabled")
    return enabled is None or (enabled is True and status["UnitFileState"] == "enabled")


def judged_arguments(args: dict[str, Any]) -> dict[str, Any] | None:
    """The task's arguments as this action judges them, or None when the module must run."""
    if set(args) - _JUDGED or not isinstance(args.get("name"), str) or not args["name"]:
        return None
    try:
        flags = {
            name: boolean(args[name], strict=True)
            for name in ("enabled", "daemon_reload", "daemon_reexec")
            if args.get(name) is not None
        }
    except TypeError:
        return None
    if flags.get("daemon_reload") or flags.get("daemon_reexec"):
        return None
    if args.get("scope", "system") != "system" or args.get("state") not in (
        None,
        "started",
        "stopped",
    ):
        return None
    if args.get("state") is None and "enabled" not in flags:
        return None
    return {"name": args["name"], "state": args.get("state"), "enabled": flags.get("enabled")}


class ActionModule(ShellFirstAction):
    module = "ansible.legacy.systemd_service"

    def shell_answer(self, args: dict[str, Any]) -> dict[str, Any] | None:
        wanted = judged_arguments(args)
        if wanted is None:
            return None
        shown = self.shell_stdout(show_command(wanted["name"]))
        status = parse_show(shown) if shown is not None else {}
        if not already_as_asked(wanted, status):
            return None
        answer: dict[str, Any] = {"changed": False, "name": wanted["name"]}
        if wanted["state"] is not None:
            answer["state"] = wanted["state"]
        if wanted["enabled"] is not None:
            answer["enabled"] = wanted["enabled"]
        answer["status"] = status
        return answer
