"""Validate the inventory input of every host of the play in one controller-side pass.

Run once (run_once: true) it checks, for each host of the play, every role that playbooks/site.yml
applies to the host (read by plugin_utils/_input_variables, so the two cannot disagree): the
role's meta/argument_specs.yml and its rules (plugin_utils/_input_rules.py). A host's variables
are those the role would see: its defaults, then the host's inventory variables, then its vars,
each rendered for that host only when a check reads it. Every error of every host is reported
in one failure.

With roles it checks the current host for those roles only, from the task's variables: the
form each role's first task uses when the role runs on its own. There os_families (and
os_releases) also check the host's operating system from its facts, when it has them: one task
where a role had an include, the validation and an assert.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.onprem.llm.plugins.plugin_utils._controller_action import ControllerAction
from ansible_collections.onprem.llm.plugins.plugin_utils._input_check import (
    check_hosts,
    report,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import (
    ROLES,
    HostVariables,
    layered,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._site_variables import (
    Renderer,
    Role,
    SiteVariables,
)

_ARGUMENT_SPEC = {
    "roles": {"type": "list", "elements": "str", "choices": list(ROLES)},
    "os_families": {"type": "list", "elements": "str"},
    "os_releases": {"type": "dict"},
}


def os_error(
    role: str,
    host: str,
    facts: dict[str, Any],
    families: list[str] | None,
    releases: dict[str, Any] | None,
) -> str | None:
    """Why the host's operating system is not one the role supports, or None (also without
    facts: a play that gathered none, or the inventory-wide pass)."""
    distribution = facts.get("distribution")
    if families and facts.get("os_family") is not None and facts["os_family"] not in families:
        supported = ", ".join(families)
    elif releases and distribution is not None:
        versions = [str(version) for version in releases.get(distribution) or []]
        if str(facts.get("distribution_major_version")) in versions:
            return None
        supported = " and ".join(
            f"{name} {'/'.join(str(version) for version in wanted)}"
            for name, wanted in releases.items()
        )
    else:
        return None
    return (
        f"{role}: the role supports {supported} hosts; {host} runs {distribution}"
        f" {facts.get('distribution_version', '')}".rstrip()
    )


class ActionModule(ControllerAction):
    """Validate input on the controller; no connection to any host."""

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result, args = self.start(tmp, task_vars, _ARGUMENT_SPEC)
        groups = dict(task_vars.get("groups") or {})
        if args["roles"]:
            host = task_vars["inventory_hostname"]
            roles = {name: Role(self._loader, name) for name in args["roles"]}
            hostvars = task_vars.get("hostvars")

            def peer(other: str, role: str | None = None) -> HostVariables:
                # Another host (the hosts of one engine instance, the engine hosts a gateway
                # routes to): its inventory over the roles' (or the named role's) defaults, as
                # the role computes it from hostvars.
                if hostvars is None or other not in hostvars:
                    raise KeyError(other)
                sources = (
                    [roles[role] if role in roles else Role(self._loader, role)]
                    if role
                    else (list(roles.values()))
                )
                raw = layered(*(source.defaults for source in sources), hostvars.raw_get(other))
                return HostVariables(other, raw, Renderer(self._templar).for_variables(raw))

            variables = HostVariables(
                host, task_vars, Renderer(self._templar).for_variables(task_vars), peers=peer
            )
            errors = check_hosts(
                [host],
                lambda _host: list(roles),
                lambda _host, _role: variables,
                groups,
                {name: role.spec for name, role in roles.items()},
            )
            unsupported = os_error(
                args["roles"][0],
                host,
                dict(task_vars.get("ansible_facts") or {}),
                args["os_families"],
                args["os_releases"],
            )
            if unsupported:
                errors = {host: [*errors.get(host, []), unsupported]}
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
        site = SiteVariables.of_task(self, task_vars)
        specs = {name: site.role(name).spec for name in ROLES}
        return check_hosts(hosts, site.roles_of, site.variables_of, groups, specs)
