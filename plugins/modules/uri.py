# Copyright: onprem.llm maintainers
# Apache License 2.0 (see LICENSE or https://www.apache.org/licenses/LICENSE-2.0)
"""Documentation of the uri action plugin (the builtin, a health check answered with one shell
command)."""

DOCUMENTATION = r"""
module: uri
short_description: Interact with web services, a plain GET answered with one shell command
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - M(ansible.builtin.uri) with the same arguments and results. The roles of this collection
    probe their local services' health with it on every run.
  - The builtin module is a Python start on the host on every run. For a plain GET this action
    runs a short script of the standard library with the Python Ansible uses on the host, which
    makes the request as the module does (C(urllib), the CA file of O(ca_path), the
    environment's proxies unless O(use_proxy=false)). When the response's status is one of
    O(status_code), the answer is the module's, built from what the script read.
  - The script and its inputs reach the host's Python on its standard input, so the
    Authorization header made from O(url_password) is on no command line.
  - Anything else runs M(ansible.builtin.uri) with the task's arguments unchanged, which then
    answers or fails as it does, O(status_code) and C(until) retries included. That is a
    status not in O(status_code), a redirect, a request that fails (refused, timed out, a
    certificate not trusted), credentials for the host in C(~/.netrc), any option not
    listed here (a method other than GET, a body, headers, O(url_username) without
    O(force_basic_auth=true), ...), check mode, a task environment, async.
options:
  url:
    description: HTTP or HTTPS URL, without credentials in it, as for M(ansible.builtin.uri).
    type: str
    required: true
  method:
    description: Only C(GET) is answered by the action; any other method runs the module.
    type: str
    default: GET
  ca_path:
    description: PEM file of the CAs that verify the server, as for M(ansible.builtin.uri).
    type: path
  status_code:
    description: The statuses that are a success; a response with any other runs the module.
    type: list
    elements: int
    default: [200]
  return_content:
    description: Whether the response's body is returned in RV(content).
    type: bool
    default: false
  timeout:
    description: Socket timeout in seconds.
    type: int
    default: 30
  use_proxy:
    description: Whether the host environment's proxy settings are used.
    type: bool
    default: true
  validate_certs:
    description: Only V(true) is answered by the action; V(false) runs the module.
    type: bool
    default: true
  url_username:
    description: The user for basic authentication, sent only with O(force_basic_auth=true).
    type: str
    aliases: [user]
  url_password:
    description: The password for basic authentication.
    type: str
    aliases: [password]
  force_basic_auth:
    description: Send the Authorization header with the first request.
    type: bool
    default: false
notes:
  - The other options of M(ansible.builtin.uri) are accepted and run the module.
  - The answer's RV(elapsed) is measured on the host by the script, in whole seconds.
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - ansible.builtin.action_common_attributes.flow
  - onprem.llm.shell_first
attributes:
  check_mode:
    support: none
    details: In check mode the module runs, which skips the task as it does.
seealso:
  - module: ansible.builtin.uri
"""

EXAMPLES = r"""
- name: Probe an engine instance's health
  onprem.llm.uri:
    url: https://127.0.0.1:8000/health
    ca_path: /etc/onprem-llm/pki/ca.crt
    status_code: [200, 503]
    timeout: 10
    use_proxy: false
  register: engine_health
"""

RETURN = r"""
status:
  description: The response's HTTP status.
  returned: always
  type: int
  sample: 200
url:
  description: The URL requested.
  returned: always
  type: str
  sample: https://127.0.0.1:8000/health
msg:
  description: C(OK) and the Content-Length, or the HTTP error of a status of 400 or more.
  returned: always
  type: str
  sample: OK (2 bytes)
redirected:
  description: Whether the request was redirected (never, for an answer of the action).
  returned: always
  type: bool
  sample: false
elapsed:
  description: Seconds the request took.
  returned: always
  type: int
  sample: 0
cookies:
  description: The cookies the server set, by name.
  returned: on a status below 400
  type: dict
  sample: {}
cookies_string:
  description: The cookies the server set, as a Cookie header.
  returned: on a status below 400
  type: str
  sample: ""
content:
  description: The response's body, decoded with its charset.
  returned: with return_content
  type: str
  sample: "redis_up 1"
json:
  description: The body parsed, for a JSON content type.
  returned: when the body is JSON
  type: raw
  sample: {}
content_type:
  description: The response's Content-Type header; every response header is returned so, its
    name lower-cased with C(-) as C(_).
  returned: when the server sends it
  type: str
  sample: text/plain; charset=utf-8
"""
