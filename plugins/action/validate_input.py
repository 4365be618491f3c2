"""Validate the inventory input of every host of the play in one controller-side pass.

Run once (run_once: true) it checks, for each host of the play, every role that playbooks/site.yml
applies to the host (read by plugin_utils/_input_variables, so the two cannot disagree): the
role's meta/argument_specs.yml and its rules (plugin_utils/_input_rules.py). A host's variables
are those the role would see: its defaults, then the host's inventory variables, then its vars,
each rendered for that host only when a check reads it. Every error of every host is reported
in one failure.

With roles it checks the current host for those roles only, from the task's variables: the
form each role's tasks/preflight.yml uses when the role runs on its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase
from ansible.template import trust_as_template
from ansible.vars.hostvars import HostVars
from ansible_collections.onprem.llm.plugins.plugin_utils._input_check import (
    RoleSpec,
    check_hosts,
    report,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import (
    ROLES,
    HostVariables,
    VariableError,
    layered,
    roles_for_host,
)

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"

_ARGUMENT_SPEC = {
    "roles": {"type": "list", "elements": "str", "choices": list(ROLES)},
}


class _Role:
    """What a role brings to validation, read once per run."""

    def __init__(self, loader: Any, name: str) -> None:
        self.name = name
        self.defaults = self._load(loader, "defaults/main.yml")
        self.vars = self._load(loader, "vars/main.yml")
        specs = self._load(loader, "meta/argument_specs.yml").get("argument_specs", {})
        self.spec = RoleSpec(name, specs.get("main", {}).get("options", {}))

    def _load(self, loader: Any, relative: str) -> dict[str, Any]:
        path = ROLES_DIR / self.name / relative
        if not path.is_file():
            return {}
        return dict(
            loader.load_from_file(str(path), cache="none", unsafe=True, trusted_as_template=True)
            or {}
        )


class _HostVarsReading(HostVars):
    """hostvars that answers for one host from the variables already read for it: templates
    of that host that read hostvars[inventory_hostname] do not read them again."""

    def __init__(self, hostvars: HostVars, host: str, variables: dict[str, Any]) -> None:
        self.__dict__.update(hostvars.__dict__)
        self.same_as = hostvars  # the same variables: templates reading it are reused
        self._read_host = host
        self._read_variables = variables

    def raw_get(self, host_name: str) -> Any:
        if host_name == self._read_host:
            return self._read_variables
        return super().raw_get(host_name)


class _Renderer:
    """Renders templates for one host's variables after another with one templar, compiling
    each template once: hosts of a group share their templates, and compiling them is most of
    what rendering costs."""

    def __init__(self, templar: Any) -> None:
        self._templar = templar.copy_with_new_env(available_variables={})
        engine = getattr(self._templar, "_engine", None)
        compile_template = getattr(engine, "_compile_template", None)
        if compile_template is None:
            return  # another templating engine: every template is compiled where it is used
        compiled: dict[Any, Any] = {}

        def compile_once(template: Any, options: Any) -> Any:
            key = (str(template), options)
            try:
                if key not in compiled:
                    compiled[key] = compile_template(template, options)
            except TypeError:  # options that cannot be a key
                return compile_template(template, options)
            return compiled[key]

        engine._compile_template = compile_once

    def for_variables(self, variables: Mapping[str, Any]) -> Any:
        """render(name, value) for HostVariables, with these variables."""

        def render(name: str, value: Any) -> Any:
            self._templar.available_variables = variables
            try:
                return self._templar.template(value)
            except AnsibleError as error:
                raise VariableError(name, error.message) from None

        return render


class ActionModule(ActionBase):
    """Validate input on the controller; no connection to any host."""

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=_ARGUMENT_SPEC)
        groups = dict(task_vars.get("groups") or {})
        if args["roles"]:
            host = task_vars["inventory_hostname"]
            roles = {name: _Role(self._loader, name) for name in args["roles"]}
            variables = HostVariables(
                host, task_vars, _Renderer(self._templar).for_variables(task_vars)
            )
            errors = check_hosts(
                [host],
                lambda _host: list(roles),
                lambda _host, _role: variables,
                groups,
                {name: role.spec for name, role in roles.items()},
            )
            hosts = [host]
            message = report(errors)
        else:
            hosts = list(task_vars.get("ansible_play_hosts_all") or [])
            errors = self._check_play(hosts, groups, task_vars)
            message = report(errors, hosts)
        result["changed"] = False
        if errors:
            result.update(failed=True, validation_errors=errors, msg=message)
        else:
            result["msg"] = f"The input of {len(hosts)} host(s) is valid"
        return result

    def _check_play(
        self, hosts: list[str], groups: dict[str, list[str]], task_vars: dict[str, Any]
    ) -> dict[str, list[str]]:
        hostvars = task_vars.get("hostvars")
        if hostvars is None:
            raise AnsibleActionFail("validate_input needs hostvars")
        roles: dict[str, _Role] = {}
        memo: dict[Any, Any] = {}
        renderer = _Renderer(self._templar)
        inventory: dict[str, dict[str, Any]] = {}

        def role(name: str) -> _Role:
            if name not in roles:
                roles[name] = _Role(self._loader, name)
            return roles[name]

        def host_inventory(host: str) -> dict[str, Any]:
            if host not in inventory:
                inventory.clear()  # one host at a time: memory stays flat
                variables = hostvars.raw_get(host)
                reading = hostvars
                if isinstance(hostvars, HostVars) and isinstance(variables, dict):
                    reading = _HostVarsReading(hostvars, host, variables)
                inventory[host] = {**variables, "hostvars": reading}
            return inventory[host]

        def roles_of(host: str) -> list[str]:
            def applies(when: str) -> bool:
                variables = host_inventory(host)
                templar = self._templar.copy_with_new_env(available_variables=variables)
                try:
                    # site.yml's own conditions: trusted, as Ansible trusts the playbook.
                    return bool(templar.evaluate_conditional(trust_as_template(when)))
                except AnsibleError:
                    return True  # the role's own checks name what is wrong

            return roles_for_host(host, groups, applies)

        def variables_of(host: str, name: str) -> HostVariables:
            spec = role(name)
            raw = layered(spec.defaults, host_inventory(host), spec.vars)
            return HostVariables(host, raw, renderer.for_variables(raw), memo)

        specs = {name: role(name).spec for name in ROLES}
        return check_hosts(hosts, roles_of, variables_of, groups, specs)
