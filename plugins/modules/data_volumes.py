"""Documentation of the data_volumes action plugin (it runs on the controller only)."""

DOCUMENTATION = r"""
module: data_volumes
short_description: The block devices the roles of each host keep their data on, checked
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - Every role of this collection that keeps data on disk declares C(<role>_data_volumes), built
    from its own variables - the directory, the block device for it, the filesystem and whether
    the device is encrypted (LUKS2).
  - For each host of O(hosts) this action reads that variable of every role
    C(playbooks/site.yml) applies to the host, as the role sees it, adds the host's own volumes
    (C(data_volume_volumes), as the C(onprem.llm.data_volume) role sees it), and returns those
    with a device, with defaults filled in.
  - Run it once for all the play's hosts (C(run_once) with O(hosts) set to
    C(ansible_play_batch)); a bad volume of any host then stops every host before one changes.
  - A volume with an unknown key, a device outside C(/dev/), LUKS without a device or with a
    key shorter than 32 characters, or two volumes on one mount point, device or
    C(/dev/mapper/) name fail, naming the variable.
  - The C(onprem.llm.data_volume) role formats, opens and mounts what it returns.
options:
  volumes:
    description:
      - The current host's C(data_volume_volumes) as its task sees it. Every host's volumes are
        read from the inventory and extra variables; when this differs (the variable was set in
        a play's or a role's vars, which the controller cannot read for other hosts) the action
        fails, naming the variable and where to set it.
    type: list
    elements: raw
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - onprem.llm.controller_action
  - onprem.llm.controller_action.play_hosts
"""

EXAMPLES = r"""
- name: Read the data volumes of the play's hosts
  onprem.llm.data_volumes:
    hosts: "{{ ansible_play_batch }}"
    volumes: "{{ data_volume_volumes }}"
  run_once: true
  register: volumes
  no_log: true
"""

RETURN = r"""
hosts:
  description:
    - For each host, the volumes that have a device, in the order of the roles, then
      C(data_volume_volumes); each with every key filled in and C(declared_by), the variable and
      index that declared it.
    - Holds the LUKS keys; register it with C(no_log).
  returned: success
  type: dict
  sample:
    gpu-01:
      - path: /srv/models
        device: /dev/disk/by-id/nvme-EXAMPLE
        fstype: xfs
        mount_options: defaults,noatime
        encryption: luks
        luks_name: onprem-llm-models
        luks_key: VALUE_SPECIFIED_IN_NO_LOG_PARAMETER
        luks_format_force: false
        variable_prefix: model_store
        declared_by: model_store_data_volumes[0]
"""
