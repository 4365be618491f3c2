"""Filters for engine instances: onprem.llm.engine_instances, onprem.llm.engine_backends,
onprem.llm.engine_command and onprem.llm.systemd_exec_args."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.yaml import yaml_load
from ansible_collections.onprem.llm.plugins.module_utils import _engine_command, _engine_instances

# The engine role's defaults, for hosts that are not in the run.
_DEFAULTS_FILE = Path(__file__).resolve().parents[2] / "roles" / "engine" / "defaults" / "main.yml"


@cache
def _role_defaults() -> Mapping[str, Any]:
    with _DEFAULTS_FILE.open(encoding="utf-8") as handle:
        return yaml_load(handle) or {}


def engine_instances(
    host: str, settings: Mapping[str, Any], hostvars: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One host's instances from its settings (the engine role's variables); hostvars gives
    the other hosts' of an instance across hosts."""
    peers = None
    if hostvars is not None:
        peers = _engine_instances.peer_settings(_role_defaults(), hostvars)
    try:
        return _engine_instances.host_instances(str(host), settings, peers)
    except _engine_instances.EngineInputError as error:
        raise AnsibleFilterError(f"{host}: {error}") from None


def engine_backends(
    hosts: Any, hostvars: Mapping[str, Any], details: bool = False
) -> list[dict[str, Any]]:
    """Every instance of the given hosts, computed from inventory variables only."""
    if isinstance(hosts, str) or not isinstance(hosts, (list, tuple)):
        raise AnsibleFilterError(f"engine_backends: expected a list of hosts, got {hosts!r}")
    try:
        return _engine_instances.backends(list(hosts), hostvars, _role_defaults(), bool(details))
    except _engine_instances.EngineInputError as error:
        raise AnsibleFilterError(f"engine_backends: {error}") from None


def engine_command(instance: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """An instance's command (a list) and environment (a dict), from the engine role's settings."""
    if not isinstance(instance, Mapping) or not isinstance(settings, Mapping):
        raise AnsibleFilterError("engine_command: expected an instance and the settings, as dicts")
    try:
        return {
            "command": _engine_command.command(instance, settings),
            "environment": _engine_command.environment(instance, settings),
        }
    except _engine_command.EngineCommandError as error:
        raise AnsibleFilterError(
            f"engine_command: instance {instance.get('name')}: {error}"
        ) from None


def systemd_exec_args(args: Any) -> str:
    """A command line for a systemd Exec= setting: each argument kept whole, verbatim."""
    if isinstance(args, str) or not isinstance(args, (list, tuple)):
        raise AnsibleFilterError(f"systemd_exec_args: expected a list of arguments, got {args!r}")
    words = []
    for arg in args:
        text = str(arg)
        if "\n" in text or "\r" in text:
            raise AnsibleFilterError(f"systemd_exec_args: argument {text!r} holds a line break")
        # $ and % would be expanded by systemd (variables, specifiers); quotes keep spaces.
        text = text.replace("$", "$$").replace("%", "%%")
        if text and not any(char in text for char in " \t\"'\\;"):
            words.append(text)
        else:
            words.append('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return " ".join(words)


class FilterModule:
    """Engine instance filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "engine_instances": engine_instances,
            "engine_backends": engine_backends,
            "engine_command": engine_command,
            "systemd_exec_args": systemd_exec_args,
        }
