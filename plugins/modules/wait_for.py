# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the wait_for action plugin (the builtin, tried first with one connect)."""

DOCUMENTATION = r"""
module: wait_for
short_description: Wait for a port, one shell command when it already accepts connections
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - M(ansible.builtin.wait_for) with the same arguments and results. The roles of this
    collection wait for their services' ports with it.
  - The builtin module is a Python start on the host on every run. This action first opens one
    TCP connection to the port from C(bash) (its C(/dev/tcp)) under coreutils C(timeout). A port
    that accepts it is answered from that connect, as the module answers a port already open.
  - Any other case runs M(ansible.builtin.wait_for) with the task's arguments unchanged, which
    waits and fails as it does (a port that does not accept yet, any option other than O(host),
    O(port), O(timeout), O(connect_timeout) and O(state=started), a host without C(bash) or
    C(timeout), async).
options:
  host:
    description: The host to connect to, as for M(ansible.builtin.wait_for).
    type: str
    default: 127.0.0.1
  port:
    description: The port to wait for.
    type: int
  timeout:
    description: As for M(ansible.builtin.wait_for); the module's wait.
    type: int
    default: 300
  connect_timeout:
    description: Seconds the one connection may take, as for M(ansible.builtin.wait_for).
    type: int
    default: 5
  state:
    description: As for M(ansible.builtin.wait_for); only C(started) is tried first.
    type: str
    default: started
    choices: [absent, drained, present, started, stopped]
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - onprem.llm.shell_first
seealso:
  - module: ansible.builtin.wait_for
"""

EXAMPLES = r"""
- name: Wait until node_exporter answers
  onprem.llm.wait_for:
    host: 127.0.0.1
    port: 9100
    timeout: 60
"""

RETURN = r"""
elapsed:
  description: Seconds waited; 0 when the port accepted at once.
  returned: success
  type: int
  sample: 0
port:
  description: The port waited for.
  returned: success
  type: int
  sample: 9100
state:
  description: The state waited for.
  returned: success
  type: str
  sample: started
"""
