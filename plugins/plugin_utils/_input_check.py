"""Check hosts' input role by role: the role's argument specs, then its rules; gather every error.

Pure, like the modules it uses: the validate_input action supplies the variables (already
layered and lazily templated, see _input_variables) and the parsed argument specs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.onprem.llm.plugins.plugin_utils._data_volumes import (
    DataVolumeError,
    data_volumes,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._input_rules import (
    RULES,
    SPEC_SKIP,
    declared_data_volumes,
    declared_firewall_rules,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import (
    VariableError,
    plain,
)


class RoleSpec:
    """A role's argument spec options (entry point main) and the variables its check skips."""

    def __init__(self, role: str, options: Mapping[str, Any]) -> None:
        self.role = role
        self.options: dict[str, Any] = plain(options)
        self._validators: dict[frozenset[str], ArgumentSpecValidator] = {}
        # Hosts of a group mostly share their values: each set of values is validated once.
        self._results: dict[tuple[frozenset[str], str], list[str]] = {}

    def names(self, skip: frozenset[str]) -> list[str]:
        return [name for name in self.options if name not in skip]

    def errors(self, values: dict[str, Any], skip: frozenset[str]) -> list[str]:
        """What in values does not match the options (those in skip left out)."""
        key = (skip, repr(values))
        if key not in self._results:
            if skip not in self._validators:
                options = {name: self.options[name] for name in self.names(skip)}
                self._validators[skip] = ArgumentSpecValidator(options)
            result = self._validators[skip].validate(values, validate_role_argument_spec=True)
            self._results[key] = list(result.error_messages)
        return self._results[key]


def secret_variables(role: str, v: Any) -> frozenset[str]:
    """Variables that may reference the vault: left out of the spec check, never echoed."""
    names = set(SPEC_SKIP.get(role, ()))
    listed = f"_{role}_secret_variables"
    if v.defined(listed):
        names.update(v[listed] or [])
    return frozenset(names)


def spec_errors(spec: RoleSpec, v: Any) -> list[str]:
    """What in the host's variables does not match the role's argument specs."""
    skip = secret_variables(spec.role, v)
    values: dict[str, Any] = {}
    errors: list[str] = []
    for name in spec.names(skip):
        if name not in v:
            continue
        try:
            values[name] = plain(v[name])
        except VariableError as error:
            errors.append(str(error))
    return errors + spec.errors(values, skip)


def rule_errors(role: str, v: Any, groups: Mapping[str, list[str]]) -> list[str]:
    """What the role's rules find wrong; a variable that cannot be resolved is an error too."""
    errors: list[str] = []
    for rule in RULES[role]:
        try:
            errors.extend(rule(v, groups))
        except VariableError as error:
            errors.append(str(error))
        except (TypeError, ValueError, AttributeError) as error:
            errors.append(f"{rule.__name__}: cannot check the input: {error}")
    for suffix, declared_rule in (
        ("_firewall_rules", declared_firewall_rules),
        ("_data_volumes", declared_data_volumes),
    ):
        declared = role + suffix
        if declared in v:
            try:
                errors.extend(declared_rule(declared, v, groups))
            except VariableError as error:
                errors.append(str(error))
    return errors


def check_role(
    role: str, v: Any, groups: Mapping[str, list[str]], spec: RoleSpec | None
) -> list[str]:
    """Errors of one role on one host. Rules run once the variables match the specs (they rely
    on the types the specs check), as the role's own preflight did."""
    errors = spec_errors(spec, v) if spec is not None else []
    if errors:
        return errors
    return rule_errors(role, v, groups)


def check_hosts(
    hosts: Iterable[str],
    roles_of: Callable[[str], Iterable[str]],
    variables_of: Callable[[str, str], Any],
    groups: Mapping[str, list[str]],
    specs: Mapping[str, RoleSpec],
) -> dict[str, list[str]]:
    """Every error of every host, as {host: ['<role>: <message>', ...]}, hosts without errors
    left out. variables_of(host, role) gives the host's variables as that role sees them."""
    found: dict[str, list[str]] = {}
    for host in hosts:
        roles = list(roles_of(host))
        for role in roles:
            try:
                v = variables_of(host, role)
                errors = check_role(role, v, groups, specs.get(role))
            except VariableError as error:
                errors = [str(error)]
            for message in errors:
                found.setdefault(host, []).append(f"{role}: {message}")
        if host not in found:
            for message in host_data_volume_errors(host, roles, variables_of):
                found.setdefault(host, []).append(f"data_volume: {message}")
    return found


def host_data_volume_errors(
    host: str, roles: Iterable[str], variables_of: Callable[[str, str], Any]
) -> list[str]:
    """What the volumes of all the host's roles get wrong together (one device or mount point
    for two); each role's own volumes are checked with its rules."""
    declared: dict[str, Any] = {}
    for role in roles:
        name = "data_volume_volumes" if role == "data_volume" else role + "_data_volumes"
        v = variables_of(host, role)
        if name in v:
            declared[name] = v[name]
    # As the data_volume role reads them: the roles' volumes, then the host's own.
    own = declared.pop("data_volume_volumes", None)
    if own is not None:
        declared["data_volume_volumes"] = own
    try:
        data_volumes(declared)
    except DataVolumeError as error:
        return [str(error)]
    return []


def report(
    errors: Mapping[str, list[str]], play_hosts: list[str] | None = None, named: int = 20
) -> str:
    """One failure message: a line per error, each naming the host; with the play's hosts, a
    last line naming those the run stops on (the first few of a large play)."""
    lines = [f"{host}: {message}" for host, messages in errors.items() for message in messages]
    message = f"Input validation failed on {len(errors)} host(s), {len(lines)} error(s):\n"
    message += "\n".join(lines)
    if play_hosts is not None:
        stopped = ", ".join(play_hosts[:named])
        if len(play_hosts) > named:
            stopped += f" and {len(play_hosts) - named} more"
        message += (
            f"\nThe run stops on all {len(play_hosts)} host(s) of the play, none changed: "
            f"{stopped}."
        )
    return message
