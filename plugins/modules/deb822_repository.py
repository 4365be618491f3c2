# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the deb822_repository action plugin (the builtin, read first with one shell
command)."""

DOCUMENTATION = r"""
module: deb822_repository
short_description: Add an APT repository in deb822 format, one shell command when already right
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - M(ansible.builtin.deb822_repository) with the same arguments and results. The roles of this
    collection add their APT repositories with it.
  - The builtin module is a Python start on the host on every run, and needs C(python3-debian)
    there. For O(name), O(types), O(uris), O(suites), O(components), O(architectures), an
    absolute O(signed_by) path and O(state=present), this action renders the sources file
    C(/etc/apt/sources.list.d/NAME.sources) as the module writes it and reads the host's file
    with one shell command (coreutils C(stat), C(base64)). A regular file with that content,
    mode C(0644) and the command's user as owner is answered unchanged, with the module's
    RV(repo), RV(dest) and RV(key_filename).
  - Any other case runs M(ansible.builtin.deb822_repository) with the task's arguments
    unchanged (a file to write or change, a link, a O(signed_by) that is not a file on the
    host, a URL or key data, any other option, O(state=absent), a value on several lines,
    a host with SELinux on, async).
options:
  name:
    description: The repository's name, as for M(ansible.builtin.deb822_repository).
    type: str
    required: true
  types:
    description: As for M(ansible.builtin.deb822_repository).
    type: list
    elements: str
    choices: [deb, deb-src]
    default: [deb]
  uris:
    description: As for M(ansible.builtin.deb822_repository).
    type: list
    elements: str
  suites:
    description: As for M(ansible.builtin.deb822_repository).
    type: list
    elements: str
  components:
    description: As for M(ansible.builtin.deb822_repository).
    type: list
    elements: str
  architectures:
    description: As for M(ansible.builtin.deb822_repository).
    type: list
    elements: str
  signed_by:
    description:
      - As for M(ansible.builtin.deb822_repository). An absolute path to a key file on the host
        is read first; a URL or key data always runs the module.
    type: str
  mode:
    description: As for M(ansible.builtin.deb822_repository); given, it always runs the module.
    type: raw
    default: "0644"
  state:
    description: As for M(ansible.builtin.deb822_repository); C(absent) always runs the module.
    type: str
    choices: [absent, present]
    default: present
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - onprem.llm.shell_first
requirements:
  - C(python3-debian) on the host, when the module runs.
seealso:
  - module: ansible.builtin.deb822_repository
"""

EXAMPLES = r"""
- name: Add the CUDA repository
  onprem.llm.deb822_repository:
    name: cuda
    types: [deb]
    uris: ["https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/"]
    suites: ["/"]
    signed_by: /etc/apt/keyrings/cuda.asc
    state: present
"""

RETURN = r"""
repo:
  description: The sources file's content in deb822 format.
  returned: success
  type: str
  sample: "Signed-By: /etc/apt/keyrings/cuda.asc\nSuites: /\nTypes: deb\nURIs: https://example.com/\n"
dest:
  description: The sources file.
  returned: success
  type: str
  sample: /etc/apt/sources.list.d/cuda.sources
key_filename:
  description: The key file of O(signed_by), or null when there is none.
  returned: success
  type: str
  sample: /etc/apt/keyrings/cuda.asc
"""
