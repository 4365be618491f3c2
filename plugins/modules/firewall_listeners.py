"""Documentation of the firewall_listeners action plugin (it runs on the controller only)."""

DOCUMENTATION = r"""
module: firewall_listeners
short_description: The firewall rules the roles of a host declare for the ports they listen on
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - Every role of this collection that listens on the network declares who may reach its ports
    in C(<role>_firewall_rules), built from its own port variables, so that a port is written
    once and a new service cannot be left out of the firewall.
  - For the current host this action reads that variable of every role C(playbooks/site.yml)
    applies to the host (by its inventory groups and the plays' conditions), as the role sees
    it - its defaults, then the host's inventory variables, then its vars.
  - A rule may name a group that site.yml uses (such as C(monitoring)) while the inventory has
    none; that group then allows nobody, and a rule left with no source is left out.
  - The C(onprem.llm.firewall) role validates the rules with the C(onprem.llm.firewall_rules)
    filter and writes them into its nftables ruleset.
options: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - onprem.llm.controller_action
"""

EXAMPLES = r"""
- name: Read the ports the roles of this host listen on
  onprem.llm.firewall_listeners:
  register: listeners
"""

RETURN = r"""
roles:
  description: The roles site.yml applies to the host, in order.
  returned: success
  type: list
  elements: str
  sample: [common, firewall, pki, node_exporter, redis, audit]
rules:
  description: Each role's rules by the name of its variable.
  returned: success
  type: dict
  sample:
    node_exporter_firewall_rules:
      - name: node-exporter
        port: "9100"
        from_groups: [monitoring]
"""
