# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the systemd_service action plugin (the builtin, read first with systemctl)."""

DOCUMENTATION = r"""
module: systemd_service
short_description: Manage a systemd unit, one systemctl command for a unit already as asked
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - M(ansible.builtin.systemd_service) with the same arguments and results. The roles of this
    collection start and enable their services with it.
  - The builtin module is a Python start on the host and several systemctl calls on every run.
    This action first reads the unit with one C(systemctl show). A unit that is loaded, needs no
    daemon reload and already is as asked (running for O(state=started), not running for
    O(state=stopped), C(enabled) for O(enabled=true)) is answered from that read, with RV(status)
    holding the properties read.
  - Any other case runs M(ansible.builtin.systemd_service) with the task's arguments unchanged
    (a change to make, O(daemon_reload), O(daemon_reexec), O(masked), O(state=restarted) or
    O(state=reloaded), a scope other than C(system), an unknown unit, O(enabled=false), async).
options:
  name:
    description: The unit, as for M(ansible.builtin.systemd_service).
    type: str
    aliases: [service, unit]
  state:
    description: As for M(ansible.builtin.systemd_service).
    type: str
    choices: [reloaded, restarted, started, stopped]
  enabled:
    description: As for M(ansible.builtin.systemd_service).
    type: bool
  masked:
    description: As for M(ansible.builtin.systemd_service); always runs the module.
    type: bool
  daemon_reload:
    description: As for M(ansible.builtin.systemd_service); true always runs the module.
    type: bool
    default: false
    aliases: [daemon-reload]
  daemon_reexec:
    description: As for M(ansible.builtin.systemd_service); true always runs the module.
    type: bool
    default: false
    aliases: [daemon-reexec]
  scope:
    description: As for M(ansible.builtin.systemd_service); only C(system) is read first.
    type: str
    choices: [system, user, global]
    default: system
  no_block:
    description: As for M(ansible.builtin.systemd_service); always runs the module.
    type: bool
    default: false
  force:
    description: As for M(ansible.builtin.systemd_service); always runs the module.
    type: bool
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - onprem.llm.shell_first
seealso:
  - module: ansible.builtin.systemd_service
"""

EXAMPLES = r"""
- name: Start chrony and enable it at boot
  onprem.llm.systemd_service:
    name: chrony
    state: started
    enabled: true
"""

RETURN = r"""
name:
  description: The unit.
  returned: success
  type: str
  sample: chrony
state:
  description: The state asked, as M(ansible.builtin.systemd_service) returns it.
  returned: when O(state) is set
  type: str
  sample: started
enabled:
  description: Whether the unit is enabled, as M(ansible.builtin.systemd_service) returns it.
  returned: when O(enabled) is set
  type: bool
  sample: true
status:
  description:
    - The unit's properties. From the builtin module, all of C(systemctl show); answered here,
      C(LoadState), C(ActiveState), C(UnitFileState) and C(NeedDaemonReload).
  returned: success
  type: dict
  sample: {"ActiveState": "active", "LoadState": "loaded", "NeedDaemonReload": "no",
           "UnitFileState": "enabled"}
"""
