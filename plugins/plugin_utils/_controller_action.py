"""The base of the actions that read the site on the controller and never reach the host
(validate_input, firewall_listeners, data_volumes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ansible.plugins.action import ActionBase

# The option of the actions that read every host of the play in one run.
PLAY_HOSTS_OPTION = {"hosts": {"type": "list", "elements": "str", "default": []}}


def play_hosts(args: Mapping[str, Any], task_vars: Mapping[str, Any]) -> list[str]:
    """The hosts to read: those given, else the current host."""
    return list(args["hosts"] or [task_vars["inventory_hostname"]])


class ControllerAction(ActionBase):
    """No connection to the host and no files sent to it."""

    TRANSFERS_FILES = False
    _requires_connection = False

    def start(
        self, tmp: Any, task_vars: dict[str, Any], argument_spec: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The action's result so far and its arguments, checked against argument_spec."""
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=argument_spec)
        return result, args
