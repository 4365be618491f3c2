"""Documentation of the data_volumes action plugin (it runs on the controller only)."""

DOCUMENTATION = r"""
module: data_volumes
short_description: The block devices the roles of a host keep their data on, checked
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - Every role of this collection that keeps data on disk declares C(<role>_data_volumes), built
    from its own variables - the directory, the block device for it, the filesystem and whether
    the device is encrypted (LUKS2).
  - For the current host this action reads that variable of every role C(playbooks/site.yml)
    applies to the host, as the role sees it, adds O(volumes) (the host's own volumes), and
    returns those with a device, with defaults filled in.
  - A volume with an unknown key, a device outside C(/dev/), LUKS without a device or with a
    key shorter than 32 characters, or two volumes on one mount point, device or
    C(/dev/mapper/) name fail, naming the variable.
  - The C(onprem.llm.data_volume) role formats, opens and mounts what it returns.
options:
  volumes:
    description:
      - The host's own volumes, not owned by a role (C(data_volume_volumes)).
      - Each a dict with C(path) and C(device), optional C(fstype) (C(xfs), C(ext4)),
        C(mount_options), C(encryption) (C(none), C(luks)), C(luks_name), C(luks_key) and
        C(luks_format_force).
    type: list
    elements: raw
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - onprem.llm.controller_action
"""

EXAMPLES = r"""
- name: Read the data volumes of this host
  onprem.llm.data_volumes:
    volumes: "{{ data_volume_volumes }}"
  register: volumes
  no_log: true
"""

RETURN = r"""
volumes:
  description:
    - The volumes that have a device, in the order of the roles, then O(volumes); each with
      every key filled in and C(declared_by), the variable and index that declared it.
    - Holds the LUKS keys; register it with C(no_log).
  returned: success
  type: list
  elements: dict
  sample:
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
