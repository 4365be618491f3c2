# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the user action plugin (the builtin, read first with one shell command)."""

DOCUMENTATION = r"""
module: user
short_description: Manage a user account, one shell command for a user already as asked
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - M(ansible.builtin.user) with the same arguments and results. The roles of this collection
    make their services' system users with it.
  - The builtin module is a Python start on the host on every run. On a Linux host, this action
    first reads the user with one shell command (C(getent passwd), and C(getent group) for
    O(group)). A user asked O(state=present) that exists with the O(shell), O(home), O(comment)
    and primary O(group) asked, and, unless O(create_home=false), whose home directory exists,
    is answered from that read, as the module answers it. O(system) does not change a user
    that exists, in this action as in the module.
  - Any other case runs M(ansible.builtin.user) with the task's arguments unchanged (a user to
    make or to change, O(state=absent), any option other than those documented here, a
    O(shell) or O(home) with C(~) or C($) for the module to expand, a host other than Linux,
    async).
options:
  name:
    description: The user's name, as for M(ansible.builtin.user).
    type: str
    required: true
    aliases: [user]
  state:
    description: As for M(ansible.builtin.user); C(absent) always runs the module.
    type: str
    choices: [absent, present]
    default: present
  system:
    description: As for M(ansible.builtin.user); it only matters when the user is made.
    type: bool
    default: false
  shell:
    description: The user's shell, as for M(ansible.builtin.user).
    type: path
  home:
    description: The user's home directory, as for M(ansible.builtin.user).
    type: path
  create_home:
    description:
      - As for M(ansible.builtin.user). Unless V(false), a user whose home directory does not
        exist runs the module, which makes it.
    type: bool
    default: true
    aliases: [createhome]
  comment:
    description: The user's comment (GECOS field), as for M(ansible.builtin.user).
    type: str
  group:
    description: The user's primary group, a name or a GID, as for M(ansible.builtin.user).
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - onprem.llm.shell_first
seealso:
  - module: ansible.builtin.user
"""

EXAMPLES = r"""
- name: Create the exporter's system user
  onprem.llm.user:
    name: node-exporter
    system: true
    shell: /usr/sbin/nologin
    home: /nonexistent
    create_home: false
"""

RETURN = r"""
name:
  description: The user's name.
  returned: always
  type: str
  sample: node-exporter
state:
  description: The state asked.
  returned: always
  type: str
  sample: present
uid:
  description: The user's UID.
  returned: when the user exists
  type: int
  sample: 998
group:
  description: The user's primary group's GID.
  returned: when the user exists
  type: int
  sample: 998
comment:
  description: The user's comment (GECOS field).
  returned: when the user exists
  type: str
  sample: ""
home:
  description: The user's home directory.
  returned: when the user exists
  type: str
  sample: /nonexistent
shell:
  description: The user's shell.
  returned: when the user exists
  type: str
  sample: /usr/sbin/nologin
append:
  description: As for M(ansible.builtin.user), for a user that existed.
  returned: when the user existed
  type: bool
  sample: false
move_home:
  description: As for M(ansible.builtin.user), for a user that existed.
  returned: when the user existed
  type: bool
  sample: false
"""
