# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the slurp action plugin (the builtin, read with one shell command)."""

DOCUMENTATION = r"""
module: slurp
short_description: Read a file from a host in base64, with one shell command
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - M(ansible.builtin.slurp) with the same argument and results. The roles of this collection
    read their hosts' files with it.
  - The builtin module is a Python start on the host on every run. This action reads a readable
    regular file with C(base64) in the host's POSIX shell instead.
  - Anything else runs M(ansible.builtin.slurp) with the task's argument unchanged, which then
    answers or fails as it does (a missing or unreadable file, a directory, a host without
    C(base64), async).
options:
  src:
    description: The file to read, as for M(ansible.builtin.slurp).
    type: path
    required: true
    aliases: [path]
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - onprem.llm.shell_first
seealso:
  - module: ansible.builtin.slurp
"""

EXAMPLES = r"""
- name: Read the host's current certificate
  onprem.llm.slurp:
    src: /etc/onprem-llm/pki/host.crt
  register: current_certificate
"""

RETURN = r"""
content:
  description: The file's content, base64-encoded.
  returned: success
  type: str
  sample: "MjE3OQo="
encoding:
  description: The content's encoding, always C(base64).
  returned: success
  type: str
  sample: base64
source:
  description: The file read.
  returned: success
  type: str
  sample: /etc/onprem-llm/pki/host.crt
"""
