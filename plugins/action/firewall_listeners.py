"""The firewall rules of the services each host runs, each declared by the role that listens.

Every role that opens a port declares who may reach it in <role>_firewall_rules, built from
its own port variables (so a port is written once). This action reads, for each host it is
given, that variable of every role playbooks/site.yml applies to the host, as the role sees it
(its defaults, the host's inventory, its vars). The firewall role runs it once for the play's
hosts and opens exactly those ports on each.
"""

from __future__ import annotations

from typing import Any

from ansible_collections.onprem.llm.plugins.module_utils._firewall import without_absent_groups
from ansible_collections.onprem.llm.plugins.plugin_utils._controller_action import (
    PLAY_HOSTS_OPTION,
    ControllerAction,
    play_hosts,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import SITE_GROUPS
from ansible_collections.onprem.llm.plugins.plugin_utils._site_variables import SiteVariables

RULES_SUFFIX = "_firewall_rules"


class ActionModule(ControllerAction):
    """Read on the controller; no connection to any host."""

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result, args = self.start(tmp, task_vars, PLAY_HOSTS_OPTION)
        groups = dict(task_vars.get("groups") or {})
        site = SiteVariables.of_task(self, task_vars)
        found: dict[str, Any] = {}
        for host in play_hosts(args, task_vars):
            declared = site.declared(host, RULES_SUFFIX)
            rules = {
                name: without_absent_groups(value, groups, SITE_GROUPS)
                for name, value in declared.items()
            }
            found[host] = {"roles": site.roles_of(host), "rules": rules}
        result.update(changed=False, hosts=found)
        return result
