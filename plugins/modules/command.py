# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the command action plugin (the builtin, run by the host's shell)."""

DOCUMENTATION = r"""
module: command
short_description: Run a program on a host, from its shell when the module would do the same
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - M(ansible.builtin.command) with the same arguments and results. The roles of this
    collection run their programs with it, most of them to read state on every run.
  - The builtin module is a Python start on the host around one program. Given O(argv) or
    O(cmd) (with O(strip_empty_ends), O(expand_argument_vars)), this action runs the program
    from the host's POSIX shell with C(exec), its arguments quoted, and answers with the
    module's keys and meaning
    (RV(rc), RV(stdout), RV(stderr), RV(cmd), RV(start), RV(end), RV(delta), RV(msg)); a
    non-zero return code fails the task with C(non-zero return code), as the module does.
  - Anything the shell would run differently runs M(ansible.builtin.command) with the task's
    arguments unchanged, check mode (where the module skips), O(stdin), O(chdir),
    O(creates), O(removes), an argument the module expands (C($VAR), C(~)), a task
    C(environment), async, a program the shell cannot find (the module's error names it).
  - There is no free-form form; give O(cmd) or O(argv).
options:
  cmd:
    description: The command line, split as M(ansible.builtin.command) splits it.
    type: str
  argv:
    description: The program and its arguments, as for M(ansible.builtin.command).
    type: list
    elements: str
  strip_empty_ends:
    description: As for M(ansible.builtin.command).
    type: bool
    default: true
  chdir:
    description: As for M(ansible.builtin.command); always runs the module.
    type: path
  creates:
    description: As for M(ansible.builtin.command); always runs the module.
    type: path
  removes:
    description: As for M(ansible.builtin.command); always runs the module.
    type: path
  stdin:
    description: As for M(ansible.builtin.command); always runs the module.
    type: str
  stdin_add_newline:
    description: As for M(ansible.builtin.command).
    type: bool
    default: true
  expand_argument_vars:
    description:
      - As for M(ansible.builtin.command).
      - When true, an argument it would expand (C($VAR), C(~)) runs the module.
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - onprem.llm.shell_first
attributes:
  check_mode:
    support: partial
    details: As M(ansible.builtin.command), which it runs in check mode.
seealso:
  - module: ansible.builtin.command
"""

EXAMPLES = r"""
- name: Read the installed engine version
  onprem.llm.command:
    argv: [dpkg-query, --show, "--showformat=${Version}", docker-ce]
    expand_argument_vars: false  # ${Version} is dpkg-query's
  register: engine_version
  changed_when: false
"""

RETURN = r"""
rc:
  description: The program's return code.
  returned: always
  type: int
  sample: 0
stdout:
  description: What the program printed, without its trailing line ends by default.
  returned: always
  type: str
  sample: "5:27.5.1-1~debian.12~bookworm"
stderr:
  description: What the program printed on its standard error.
  returned: always
  type: str
  sample: ""
cmd:
  description: The program and its arguments as run.
  returned: always
  type: list
  elements: str
  sample: [dpkg-query, --show, "--showformat=${Version}", docker-ce]
start:
  description: When the program started.
  returned: always
  type: str
  sample: "2026-12-07 21:03:12.005203"
end:
  description: When the program ended.
  returned: always
  type: str
  sample: "2026-12-07 21:03:12.012010"
delta:
  description: How long the program ran.
  returned: always
  type: str
  sample: "0:00:00.006807"
msg:
  description: C(non-zero return code) when the program failed, else empty.
  returned: always
  type: str
  sample: ""
"""
