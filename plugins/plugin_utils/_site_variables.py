"""Each host's variables as each role of site.yml sees them, read on the controller.

Shared by the actions that look at the whole site before any host changes: validate_input
(every role's input) and firewall_listeners (the ports every role listens on). A host's
variables for a role are its defaults, then the host's inventory variables, then its vars,
each rendered for that host only when read (plugin_utils/_input_variables.HostVariables).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.template import trust_as_template
from ansible.vars.hostvars import HostVars
from ansible_collections.onprem.llm.plugins.plugin_utils._input_check import RoleSpec
from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import (
    HostVariables,
    VariableError,
    layered,
    roles_for_host,
)

ROLES_DIR = Path(__file__).resolve().parents[2] / "roles"


class Role:
    """What a role brings: its defaults, vars and argument spec, read once per run (the spec,
    the largest file, only when a check asks for it)."""

    def __init__(self, loader: Any, name: str) -> None:
        self.name = name
        self._loader = loader
        self.defaults = self._load(loader, "defaults/main.yml")
        self.vars = self._load(loader, "vars/main.yml")
        self._spec: RoleSpec | None = None

    @property
    def spec(self) -> RoleSpec:
        if self._spec is None:
            specs = self._load(self._loader, "meta/argument_specs.yml").get("argument_specs", {})
            self._spec = RoleSpec(self.name, specs.get("main", {}).get("options", {}))
        return self._spec

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


class Renderer:
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


class SiteVariables:
    """The roles site.yml applies to each host and the host's variables as each role sees
    them. Hosts are read one at a time (memory stays flat); a template whose inputs are the
    same for another host is rendered once (HostVariables' memo)."""

    def __init__(self, loader: Any, templar: Any, hostvars: Any, groups: dict[str, Any]) -> None:
        self._loader = loader
        self._templar = templar
        self._hostvars = hostvars
        self._groups = groups
        self._roles: dict[str, Role] = {}
        self._memo: dict[Any, Any] = {}
        self._renderer = Renderer(templar)
        self._inventory: dict[str, dict[str, Any]] = {}

    @classmethod
    def of_task(cls, action: Any, task_vars: Mapping[str, Any]) -> SiteVariables:
        """The site as an action plugin's task sees it (its loader, templar and variables)."""
        hostvars = task_vars.get("hostvars")
        if hostvars is None:
            raise AnsibleActionFail(f"{action._task.action} needs hostvars")
        groups = dict(task_vars.get("groups") or {})
        return cls(action._loader, action._templar, hostvars, groups)

    def role(self, name: str) -> Role:
        if name not in self._roles:
            self._roles[name] = Role(self._loader, name)
        return self._roles[name]

    def inventory(self, host: str) -> dict[str, Any]:
        """The host's inventory variables (with its facts), and hostvars."""
        if host not in self._inventory:
            self._inventory.clear()
            variables = self._hostvars.raw_get(host)
            reading = self._hostvars
            if isinstance(self._hostvars, HostVars) and isinstance(variables, dict):
                reading = _HostVarsReading(self._hostvars, host, variables)
            self._inventory[host] = {**variables, "hostvars": reading}
        return self._inventory[host]

    def roles_of(self, host: str) -> list[str]:
        """The roles site.yml applies to the host, its plays' conditions evaluated for it."""

        def applies(when: str) -> bool:
            templar = self._templar.copy_with_new_env(available_variables=self.inventory(host))
            try:
                # site.yml's own conditions: trusted, as Ansible trusts the playbook.
                return bool(templar.evaluate_conditional(trust_as_template(when)))
            except AnsibleError:
                return True  # the role's own checks name what is wrong

        return roles_for_host(host, self._groups, applies)

    def variables_of(self, host: str, name: str) -> HostVariables:
        """The host's variables as role `name` sees them."""
        spec = self.role(name)
        raw = layered(spec.defaults, self.inventory(host), spec.vars)
        return HostVariables(
            host,
            raw,
            self._renderer.for_variables(raw),
            self._memo,
            peers=lambda other, role=name: self.variables_of(other, role),
        )

    def declared(self, host: str, suffix: str) -> dict[str, Any]:
        """<role><suffix> of every role site.yml applies to the host, as that role sees it:
        what each role declares about itself (its listeners, its data volumes)."""
        found: dict[str, Any] = {}
        for role in self.roles_of(host):
            name = role + suffix
            variables = self.variables_of(host, role)
            if name not in variables:
                continue
            try:
                found[name] = variables[name]
            except VariableError as error:
                raise AnsibleActionFail(f"{host}: {error}") from None
        return found
