"""The data volumes of a host: the devices its roles keep data on, each declared by its role.

Every role that keeps data declares <role>_data_volumes, built from its own variables (the
directory, the device for it, its encryption). This action reads, for the current host, that
variable of every role playbooks/site.yml applies to the host, as the role sees it, plus the
host's own data_volume_volumes, and returns the volumes that have a device, checked
(plugin_utils/_data_volumes.py). The data_volume role sets them up before the roles run.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleActionFail
from ansible_collections.onprem.llm.plugins.plugin_utils._controller_action import ControllerAction
from ansible_collections.onprem.llm.plugins.plugin_utils._data_volumes import (
    DataVolumeError,
    data_volumes,
)
from ansible_collections.onprem.llm.plugins.plugin_utils._site_variables import SiteVariables

VOLUMES_SUFFIX = "_data_volumes"


class ActionModule(ControllerAction):
    """Read on the controller; no connection to any host."""

    def run(self, tmp: Any = None, task_vars: dict[str, Any] | None = None) -> dict[str, Any]:
        task_vars = task_vars or {}
        result, args = self.start(
            tmp, task_vars, {"volumes": {"type": "list", "elements": "raw", "default": []}}
        )
        host = task_vars["inventory_hostname"]
        site = SiteVariables.of_task(self, task_vars)
        declared = {**site.declared(host, VOLUMES_SUFFIX), "data_volume_volumes": args["volumes"]}
        try:
            volumes = data_volumes(declared)
        except DataVolumeError as error:
            raise AnsibleActionFail(f"{host}: {error}") from None
        result.update(changed=False, volumes=volumes)
        return result
