"""Documentation of the firewall_listeners action plugin (it runs on the controller only)."""

DOCUMENTATION = r"""
module: firewall_listeners
short_description: The firewall rules the roles of each host declare for the ports they listen on
version_added: "0.1.0"
author: onprem.llm maintainers (@onprem-llm)
description:
  - Every role of this collection that listens on the network declares who may reach its ports
    in C(<role>_firewall_rules), built from its own port variables, so that a port is written
    once and a new service cannot be left out of the firewall.
  - For each host of O(hosts) this action reads that variable of every role
    C(playbooks/site.yml) applies to the host (by its inventory groups and the plays'
    conditions), as the role sees it - its defaults, then the host's inventory variables, then
    its vars.
  - Run it once for all the play's hosts (C(run_once) with O(hosts) set to
    C(ansible_play_batch)). The role files are then read once and no worker is started per
    host, so a site of 1,000 hosts is read in seconds.
  - A rule may name a group that site.yml uses (such as C(monitoring)) while the inventory has
    none; that group then allows nobody, and a rule left with no source is left out.
  - The C(onprem.llm.firewall) role validates the rules with the C(onprem.llm.firewall_rules)
    filter and writes them into its nftables ruleset.
options: {}
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - onprem.llm.controller_action
  - onprem.llm.controller_action.play_hosts
"""

EXAMPLES = r"""
- name: Read the ports the roles of the play's hosts listen on
  onprem.llm.firewall_listeners:
    hosts: "{{ ansible_play_batch }}"
  run_once: true
  register: listeners

- name: Show this host's rules
  ansible.builtin.debug:
    var: listeners.hosts[inventory_hostname].rules
"""

RETURN = r"""
hosts:
  description: For each host, C(roles) (the roles site.yml applies to it, in order) and C(rules)
    (each role's rules by the name of its variable).
  returned: success
  type: dict
  sample:
    redis-01:
      roles: [common, firewall, pki, node_exporter, redis, audit]
      rules:
        node_exporter_firewall_rules:
          - name: node-exporter
            port: "9100"
            from_groups: [monitoring]
"""
