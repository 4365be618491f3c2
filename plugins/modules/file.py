# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the file action plugin (the builtin, read first with one shell command)."""

DOCUMENTATION = r"""
module: file
short_description: Manage a file's state, one shell command for a directory already right
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - M(ansible.builtin.file) with the same arguments and results. The roles of this collection
    make and remove their directories with it.
  - The builtin module is a Python start on the host on every run. This action first reads the
    path with one shell command (coreutils C(stat)). A directory asked with O(state=directory)
    that exists with the O(owner), O(group) and O(mode) asked, or a path asked O(state=absent)
    that does not exist, is answered from that read.
  - Any other case runs M(ansible.builtin.file) with the task's arguments unchanged (a change
    to make, a link at the path, any other state, any option other than O(path), O(state),
    O(owner), O(group) and O(mode), a path not absolute, async).
options:
  path:
    description: The path, as for M(ansible.builtin.file).
    type: path
    required: true
    aliases: [dest, name]
  state:
    description: As for M(ansible.builtin.file); C(directory) and C(absent) are read first.
    type: str
    choices: [absent, directory, file, hard, link, touch]
  src:
    description: As for M(ansible.builtin.file); always runs the module.
    type: path
  recurse:
    description: As for M(ansible.builtin.file); always runs the module.
    type: bool
    default: false
  force:
    description: As for M(ansible.builtin.file); always runs the module.
    type: bool
    default: false
  follow:
    description: As for M(ansible.builtin.file); a link at the path always runs the module.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - onprem.llm.shell_first
  - ansible.builtin.files
attributes:
  diff_mode:
    support: partial
    details: As M(ansible.builtin.file).
seealso:
  - module: ansible.builtin.file
  - module: onprem.llm.copy
"""

EXAMPLES = r"""
- name: Create the certificate directory
  onprem.llm.file:
    path: /etc/onprem-llm/pki
    state: directory
    owner: root
    group: root
    mode: "0755"
"""

RETURN = r"""
path:
  description: The path.
  returned: success
  type: str
  sample: /etc/onprem-llm/pki
state:
  description: The path's state after the task.
  returned: success
  type: str
  sample: directory
"""
