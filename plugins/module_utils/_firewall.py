"""Firewall allow-list rules: validation and source address resolution.

Pure Python so the same code serves the filter plugin and its unit tests. Every error names
the variable and the element that is wrong, so bad inventory fails before a host changes.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping
from typing import Any

PROTOCOLS = ("tcp", "udp", "vrrp")
# IP protocols without ports (VRRP between gateways, IP protocol 112): rules give no port.
PORTLESS_PROTOCOLS = ("vrrp",)
_RULE_KEYS = {"name", "port", "protocol", "from_groups", "from_hosts", "from_networks"}
# Every port of the protocol: for hosts that are one system (the hosts of one engine instance,
# whose NCCL, Gloo and vLLM sockets take ports the kernel picks).
ANY_PORT = "any"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class FirewallRuleError(ValueError):
    """An allow-list rule or network that cannot be used."""


def parse_networks(value: Any, where: str) -> list[str]:
    """Return the networks of a list of CIDRs in canonical form, or raise naming `where`."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise FirewallRuleError(f"{where}: expected a list of CIDR networks, got {value!r}")
    networks = []
    for index, item in enumerate(value):
        try:
            networks.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
        except ValueError:
            raise FirewallRuleError(
                f"{where}[{index}]: {item!r} is not a CIDR network (expected e.g. 10.0.0.0/8)"
            ) from None
    return networks


def parse_port(value: Any, where: str) -> int:
    """Return a TCP/UDP port number, or raise naming `where`."""
    if isinstance(value, bool):
        raise FirewallRuleError(f"{where}: expected a port number 1-65535, got {value!r}")
    try:
        port = int(str(value).strip())
    except ValueError:
        raise FirewallRuleError(f"{where}: expected a port number 1-65535, got {value!r}") from None
    if not 1 <= port <= 65535:
        raise FirewallRuleError(f"{where}: expected a port number 1-65535, got {port}")
    return port


def normalize_rules(
    rules_by_variable: Mapping[str, Any], known_groups: Iterable[str]
) -> list[dict[str, Any]]:
    """Validate allow-list rules given per variable name and return them normalised.

    Each rule: name, port, protocol (tcp|udp|vrrp, default tcp; vrrp takes no port),
    from_groups, from_networks; at least one source. Rule names must be unique across all variables.
    """
    groups = set(known_groups)
    normalized: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for variable in sorted(rules_by_variable):
        rules = rules_by_variable[variable]
        if rules is None:
            continue
        if isinstance(rules, (str, Mapping)) or not isinstance(rules, Iterable):
            raise FirewallRuleError(f"{variable}: expected a list of rules, got {rules!r}")
        for index, rule in enumerate(rules):
            where = f"{variable}[{index}]"
            normalized.append(_normalize_rule(rule, where, groups, seen))
    return normalized


def _normalize_rule(
    rule: Any, where: str, groups: set[str], seen: dict[str, str]
) -> dict[str, Any]:
    if not isinstance(rule, Mapping):
        raise FirewallRuleError(f"{where}: expected a mapping with name and port, got {rule!r}")
    unknown = sorted(set(rule) - _RULE_KEYS)
    if unknown:
        raise FirewallRuleError(f"{where}: unknown keys {unknown}; expected {sorted(_RULE_KEYS)}")
    name = rule.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise FirewallRuleError(
            f"{where}.name: expected a name of letters, digits, '_', '-' or '.', got {name!r}"
        )
    if name in seen:
        raise FirewallRuleError(f"{where}.name: {name!r} is already used by {seen[name]}")
    seen[name] = where
    protocol = rule.get("protocol", "tcp")
    if protocol not in PROTOCOLS:
        raise FirewallRuleError(f"{where}.protocol: expected one of {PROTOCOLS}, got {protocol!r}")
    from_groups = rule.get("from_groups") or []
    if isinstance(from_groups, str) or not isinstance(from_groups, Iterable):
        raise FirewallRuleError(
            f"{where}.from_groups: expected a list of inventory groups, got {from_groups!r}"
        )
    for group in from_groups:
        if group not in groups:
            raise FirewallRuleError(
                f"{where}.from_groups: {group!r} is not an inventory group "
                f"(known: {', '.join(sorted(groups))})"
            )
    from_hosts = rule.get("from_hosts") or []
    if (
        isinstance(from_hosts, str)
        or not isinstance(from_hosts, Iterable)
        or not all(isinstance(host, str) and host for host in from_hosts)
    ):
        raise FirewallRuleError(
            f"{where}.from_hosts: expected a list of inventory host names, got {from_hosts!r}"
        )
    from_networks = parse_networks(rule.get("from_networks") or [], f"{where}.from_networks")
    if not from_groups and not from_hosts and not from_networks:
        raise FirewallRuleError(
            f"{where}: rule {name!r} allows nobody; give from_groups, from_hosts or from_networks"
        )
    port = _rule_port(rule, protocol, where)
    if port == ANY_PORT and (from_groups or from_networks):
        raise FirewallRuleError(
            f"{where}.port: {ANY_PORT} opens every port, to from_hosts only (named hosts that are "
            "one system); give a port for groups and networks"
        )
    return {
        "name": name,
        "port": port,
        "protocol": protocol,
        "from_groups": sorted(from_groups),
        "from_hosts": sorted(from_hosts),
        "from_networks": from_networks,
    }


def _rule_port(rule: Mapping[str, Any], protocol: str, where: str) -> int | str | None:
    if protocol in PORTLESS_PROTOCOLS:
        if rule.get("port") is not None:
            raise FirewallRuleError(f"{where}.port: protocol {protocol} has no ports; remove port")
        return None
    if rule.get("port") == ANY_PORT:
        return ANY_PORT
    return parse_port(rule.get("port"), f"{where}.port")


def host_addresses(host: str, host_vars: Mapping[str, Any]) -> list[str]:
    """Return the IP addresses other hosts' firewalls should allow for `host`.

    Order: firewall_address (one or a list), ansible_host when it is an IP, then the
    default IPv4/IPv6 addresses from gathered facts.
    """
    explicit = host_vars.get("firewall_address")
    if explicit:
        items = [explicit] if isinstance(explicit, str) else list(explicit)
        addresses = []
        for item in items:
            try:
                addresses.append(str(ipaddress.ip_address(str(item))))
            except ValueError:
                raise FirewallRuleError(
                    f"firewall_address of host {host}: {item!r} is not an IP address"
                ) from None
        return addresses
    try:
        return [str(ipaddress.ip_address(str(host_vars.get("ansible_host", ""))))]
    except ValueError:
        pass
    facts = [
        (host_vars.get(key) or {}).get("address")
        for key in ("ansible_default_ipv4", "ansible_default_ipv6")
    ]
    return [str(ipaddress.ip_address(a)) for a in facts if a]


def resolve_sources(
    rules: list[dict[str, Any]],
    groups: Mapping[str, Iterable[str]],
    hostvars: Mapping[str, Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """Add `sources_v4` and `sources_v6` (sorted, unique) to each normalised rule."""
    resolved = []
    for rule in rules:
        sources = set(rule["from_networks"])
        for group in rule["from_groups"]:
            for host in groups.get(group, []):
                addresses = host_addresses(host, hostvars[host])
                if not addresses:
                    raise FirewallRuleError(
                        f"rule {rule['name']!r}: host {host} of group {group} has no known IP "
                        "address; set firewall_address or an IP ansible_host for it, "
                        "or gather its facts in the same run"
                    )
                sources.update(addresses)
        for host in rule.get("from_hosts") or []:
            if host not in hostvars:
                raise FirewallRuleError(
                    f"rule {rule['name']!r}: from_hosts names {host}, not a host of the inventory"
                )
            addresses = host_addresses(host, hostvars[host])
            if not addresses:
                raise FirewallRuleError(
                    f"rule {rule['name']!r}: host {host} has no known IP address; set "
                    "firewall_address or an IP ansible_host for it, or gather its facts in the "
                    "same run"
                )
            sources.update(addresses)
        networks = [ipaddress.ip_network(s, strict=False) for s in sources]
        resolved.append(
            {
                **rule,
                "sources_v4": [str(n) for n in sorted(n for n in networks if n.version == 4)],
                "sources_v6": [str(n) for n in sorted(n for n in networks if n.version == 6)],
            }
        )
    return resolved


def without_absent_groups(
    rules: Any, groups: Mapping[str, Any], optional_groups: Iterable[str]
) -> Any:
    """Rules less the optional groups the inventory lacks (a role's rule for the monitoring
    hosts on a site without any); a rule left with no source is left out. Anything not shaped
    like a list of rules is returned as it is, for normalize_rules to name what is wrong."""
    if isinstance(rules, (str, Mapping)) or not isinstance(rules, Iterable):
        return rules
    optional = set(optional_groups)
    kept: list[Any] = []
    for rule in rules:
        from_groups = rule.get("from_groups") if isinstance(rule, Mapping) else None
        if isinstance(from_groups, (str, Mapping)) or not isinstance(from_groups, Iterable):
            kept.append(rule)
            continue
        present = [group for group in from_groups if group in groups or group not in optional]
        if not present and not rule.get("from_networks") and not rule.get("from_hosts"):
            continue
        kept.append({**rule, "from_groups": present})
    return kept
