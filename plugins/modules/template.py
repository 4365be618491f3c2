# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the template action plugin (ansible.builtin.template, one call fewer)."""

DOCUMENTATION = r"""
module: template
short_description: Template a file out to a host, one shell command for a file already right
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - M(ansible.builtin.template) with the same arguments and results. The roles of this
    collection write their files with it.
  - The builtin action stats the destination and, when the rendered content matches, runs the
    file module again to enforce owner, group and mode. This one reads those from the stat it
    already made, and runs the file module only when they differ or when an option it does not
    judge is set (SELinux options, O(attributes), a symbolic O(mode) without whom it is for).
  - The destination is read with one shell command (coreutils C(stat) and C(sha1sum)) instead
    of the stat module, a Python start on the host. A link, a device or any error goes to the
    stat module as in the builtin. A no-op run so costs one shell command per file instead of
    two module calls.
options:
  follow:
    description:
      - Whether to follow a link at the destination, as M(ansible.builtin.template) does.
      - A followed link always gets the file module call.
    type: bool
    default: false
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - ansible.builtin.action_common_attributes.files
  - onprem.llm.file_action
  - ansible.builtin.backup
  - ansible.builtin.files
  - ansible.builtin.template_common
  - ansible.builtin.validate
seealso:
  - module: ansible.builtin.template
  - module: onprem.llm.copy
"""

EXAMPLES = r"""
- name: Write the chrony configuration
  onprem.llm.template:
    src: chrony.conf.j2
    dest: /etc/chrony/chrony.conf
    owner: root
    group: root
    mode: "0644"
"""

RETURN = r"""
dest:
  description: The destination file.
  returned: success
  type: str
  sample: /etc/chrony/chrony.conf
checksum:
  description: SHA1 of the rendered file.
  returned: success
  type: str
  sample: 2a5aeecc61dc98c4d780b14b330e3282
"""
