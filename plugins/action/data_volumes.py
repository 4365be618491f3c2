"""The data volumes of each host: the devices its roles keep data on, each declared by its role.

Every role that keeps data declares <role>_data_volumes, built from its own variables (the
directory, the device for it, its encryption). This action reads, for each host it is given,
that variable of every role playbooks/site.yml applies to the host, as the role sees it, plus
the host's own data_volume_volumes, and returns the volumes that have a device, checked
(plugin_utils/_data_volumes.py). The data_volume role runs it once for the play's hosts and sets
each host's volumes up before the roles run.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible_collections.onprem.llm.plugins.plugin_utils._controller_action import (
    PLAY_HOSTS_OPTION,
    ControllerAction,
    play_hosts,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._data_volumes import (
    DataVolumeError,
    data_volumes,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._input_variables import VariableError
from ansible_collections.onprem.llm.plugins.plugin_utils._site_variables import SiteVariables

VOLUMES_SUFFIX = "_data_volumes"
HOST_VOLUMES = "data_volume_volumes"


class ActionModule(ControllerAction):
    """Read on the controller; no connection to any host."""

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result, args = self.start(
            tmp,
            task_vars,
            {
                **PLAY_HOSTS_OPTION,
                "volumes": {"type": "list", "elements": "raw"},
            },
        )
        site = SiteVariables.of_task(self, task_vars)
        if args["volumes"] is not None:
            self._same_as_the_inventory(site, task_vars["inventory_hostname"], args["volumes"])
        found: dict[str, Any] = {}
        for host in play_hosts(args, task_vars):
            try:
                own = site.variables_of(host, "data_volume")[HOST_VOLUMES]
            except VariableError as error:
                raise AnsibleActionFail(f"{host}: {error}") from None
            declared = {**site.declared(host, VOLUMES_SUFFIX), HOST_VOLUMES: own}
            try:
                found[host] = data_volumes(declared)
            except DataVolumeError as error:
                raise AnsibleActionFail(f"{host}: {error}") from None
        result.update(changed=False, hosts=found)
        return result

    @staticmethod
    def _same_as_the_inventory(site: SiteVariables, host: str, volumes: list[Any]) -> None:
        """Every host's volumes are read from the inventory (and extra vars), as the validation
        reads them; a value set only in a play's or a role's vars would be missed for every
        host, so it stops the run instead."""
        try:
            inventory = site.variables_of(host, "data_volume")[HOST_VOLUMES]
        except VariableError as error:
            raise AnsibleActionFail(f"{host}: {error}") from None
        if inventory != volumes:
            raise AnsibleActionFail(
                f"{host}: {HOST_VOLUMES} is set where the controller does not read it (a play's "
                "or a role's vars): set it in the inventory (group_vars or host_vars) or as an "
                "extra variable, where the volumes of every host are read."
            )
