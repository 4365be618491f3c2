"""Documentation of the validate_input action plugin (it runs on the controller only)."""

DOCUMENTATION = r"""
module: validate_input
short_description: Validate the inventory input of every host in one controller-side pass
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - Without O(roles), run once (C(run_once=true)) on a play of all hosts, checks every host of
    the play (C(ansible_play_hosts_all)) against each role C(playbooks/site.yml) applies to it -
    by the inventory groups of its plays, and for a role with a C(when), by that condition
    evaluated with the host's inventory variables (keepalived only on gateways that set
    C(keepalived_virtual_ipaddress), the gateway service only where
    C(gateway_service_enabled)). site.yml is read, so the two cannot disagree.
  - For each host and role it checks the role's C(meta/argument_specs.yml) (entry point main,
    leaving out the variables of C(_<role>_secret_variables)) and the role's input rules, the
    Python port of its former preflight assertions. A host's variables are those the role sees
    in a play - its defaults, then the host's inventory variables, then its vars - each
    rendered for that host only when a check reads it.
  - Every error of every host is reported in one failure, one line each naming the host, the
    role, the variable and what was expected. Secret values never appear in messages.
  - With O(roles), checks only the current host for those roles, from the task's variables;
    each role's first task uses this form, so that a role run on its own still validates its
    input. With O(os_families) or O(os_releases) that task also checks the host's operating
    system from its facts (skipped when the play has none). Other checks that need facts stay
    tasks of the roles.
options:
  roles:
    description:
      - Roles to check for the current host alone. Omitted, every host of the play is checked
        for the roles of its groups.
    type: list
    elements: str
  os_families:
    description:
      - With O(roles), the OS families (C(ansible_facts.os_family)) the first role supports;
        another fails the task, naming the role, the host and its distribution.
    type: list
    elements: str
  os_releases:
    description:
      - With O(roles), the distributions the first role supports, each with its major versions
        (C(ansible_facts.distribution_major_version)), for example Debian with C(["12"]).
    type: dict
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - onprem.llm.controller_action
"""

EXAMPLES = r"""
- name: Validate the input of every host of the play
  onprem.llm.validate_input:
  run_once: true

- name: Validate the role's variables and the host's operating system before any change
  onprem.llm.validate_input:
    roles: [haproxy]
    os_families: [Debian]
"""

RETURN = r"""
validation_errors:
  description: The errors of each host that has any, each C(<role>) then the message.
  returned: failure
  type: dict
  sample:
    gateway-1:
      - "haproxy: haproxy_cloud_providers.openai.url: expected an https:// URL of an
        OpenAI-compatible API (prompts cross the internet), such as https://api.openai.com/v1,
        got 'http://api.openai.com/v1'"
"""
