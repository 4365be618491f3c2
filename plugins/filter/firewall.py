"""Filters that validate and expand the firewall allow-lists of the common role."""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.onprem.llm.plugins.module_utils._firewall import (
    FirewallRuleError,
    normalize_rules,
    parse_networks,
    resolve_sources,
)


def firewall_rules(
    rules_by_variable: dict[str, Any],
    groups: dict[str, list[str]],
    hostvars: Any = None,
) -> list[dict[str, Any]]:
    """Validate rules; with hostvars, also resolve each rule's source addresses."""
    try:
        rules = normalize_rules(rules_by_variable, groups)
        if hostvars is None:
            return rules
        return resolve_sources(rules, groups, hostvars)
    except FirewallRuleError as error:
        raise AnsibleFilterError(str(error)) from None


def cidr_networks(networks: Any, variable: str) -> list[str]:
    """Return the canonical CIDRs of a list, failing with the variable's name."""
    try:
        return parse_networks(networks, variable)
    except FirewallRuleError as error:
        raise AnsibleFilterError(str(error)) from None


class FilterModule:
    """Firewall filters."""

    def filters(self) -> dict[str, Any]:
        return {"firewall_rules": firewall_rules, "cidr_networks": cidr_networks}
