# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the copy action plugin (ansible.builtin.copy's action, one call fewer)."""

DOCUMENTATION = r"""
module: copy
short_description: Copy a file to a host, one shell command for a file already right
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - M(ansible.builtin.copy) with the same arguments and results. The roles of this collection
    write their files with it.
  - The builtin action stats the destination and, when the content matches, runs the file module
    again to enforce owner, group and mode. This one reads those from the stat it already made,
    and runs the file module only when they differ or when an option it does not judge is set
    (SELinux options, O(attributes), a symbolic O(mode) without whom it is for).
  - The destination is read with one shell command (coreutils C(stat) and C(sha1sum)) instead
    of the stat module, a Python start on the host. A link, a device or any error goes to the
    stat module as in the builtin. A no-op run so costs one shell command per file instead of
    two module calls. O(remote_src=true) and directories are the builtin's path.
options:
  src:
    description: Local path of the file or directory to copy, as for M(ansible.builtin.copy).
    type: path
  content:
    description: The file's content instead of O(src).
    type: str
  dest:
    description: Remote path of the file, or of a directory to copy into.
    type: path
    required: true
  backup:
    description: Keep a timestamped copy of the file it replaces.
    type: bool
    default: false
  force:
    description: Replace a file whose content differs; false copies only when it is absent.
    type: bool
    default: true
  mode:
    description: Permissions of the file, as for M(ansible.builtin.copy) (C(preserve) allowed).
    type: raw
  directory_mode:
    description: Permissions of directories a recursive copy creates.
    type: raw
  remote_src:
    description: Copy from a path on the target host.
    type: bool
    default: false
  follow:
    description: Follow a link at the destination.
    type: bool
    default: false
  local_follow:
    description: Follow links in O(src) on the controller.
    type: bool
    default: true
  checksum:
    description: SHA1 the copied file must have.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - ansible.builtin.action_common_attributes.files
  - onprem.llm.file_action
  - ansible.builtin.decrypt
  - ansible.builtin.files
  - ansible.builtin.validate
seealso:
  - module: ansible.builtin.copy
  - module: onprem.llm.template
"""

EXAMPLES = r"""
- name: Keep unattended upgrades away from pinned packages
  onprem.llm.copy:
    content: |
      Unattended-Upgrade::Package-Blacklist { "nvidia-"; };
    dest: /etc/apt/apt.conf.d/51onprem-llm-blacklist
    owner: root
    group: root
    mode: "0644"
"""

RETURN = r"""
dest:
  description: The destination file.
  returned: success
  type: str
  sample: /etc/apt/apt.conf.d/51onprem-llm-blacklist
checksum:
  description: SHA1 of the file.
  returned: success
  type: str
  sample: 2a5aeecc61dc98c4d780b14b330e3282
"""
