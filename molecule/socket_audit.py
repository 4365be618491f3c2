"""Every socket a test host listens on is on loopback or opened by its firewall.

The firewall role opens what the host's roles declare (<role>_firewall_rules) and nothing else,
so a service that listens on the network without its role declaring the port is found here:
it would be unreachable in production (the firewall drops it) or, worse, reachable by
accident on a host without the firewall. `ss` lists the listeners, the live nftables ruleset
gives the open ports."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

# tcp dport 9100 ip saddr { ... } accept / udp dport 514 ...
_OPEN_PORT = re.compile(r"\b(tcp|udp) dport (\d+)\b[^\n]*\baccept\b")
# meta l4proto tcp ip saddr { ... } accept: every port, to named hosts (an engine across hosts).
# nft lists the protocol by number (6, 17).
_OPEN_PROTOCOL = re.compile(
    r"^(?![^\n]*\b(?:dport|proto-dst)\b)[^\n]*\bmeta l4proto (tcp|udp|6|17)\b[^\n]*\baccept\b",
    re.M,
)
_PROTOCOL_NAMES = {"6": "tcp", "17": "udp"}
# Port 0 in open_ports: every port of the protocol.
ANY_PORT = 0


def listeners(host: Any) -> list[tuple[str, str, int, str]]:
    """(protocol, address, port, process) of every listening TCP and bound UDP socket."""
    found = []
    for line in host.check_output("ss -H -l -n -t -u -p").splitlines():
        fields = line.split()
        protocol, local = fields[0], fields[4]
        address, _sep, port = local.rpartition(":")
        address = address.strip("[]").split("%")[0]
        process = re.search(r'\(\("([^"]+)"', line)
        found.append((protocol, address, int(port), process.group(1) if process else "?"))
    return found


def open_ports(host: Any) -> set[tuple[str, int]]:
    """(protocol, port) the host's nftables ruleset accepts from anywhere but loopback."""
    ruleset = host.check_output("nft list table inet onprem_llm")
    found = {(protocol, int(port)) for protocol, port in _OPEN_PORT.findall(ruleset)}
    found |= {
        (_PROTOCOL_NAMES.get(protocol, protocol), ANY_PORT)
        for protocol in _OPEN_PROTOCOL.findall(ruleset)
    }
    return found


def _loopback(address: str) -> bool:
    if address == "*":
        return False
    return ipaddress.ip_address(address).is_loopback


def unexpected_listeners(host: Any) -> list[str]:
    """Listeners reachable from other hosts whose port the firewall does not open."""
    allowed = open_ports(host)
    return sorted(
        f"{protocol} {address}:{port} ({process})"
        for protocol, address, port, process in listeners(host)
        if not _loopback(address)
        and (protocol, port) not in allowed
        and (protocol, ANY_PORT) not in allowed
    )


_PROBE = (
    "python3 -c 'import socket,sys\n"
    "s = socket.socket(); s.settimeout(3)\n"
    'try:\n s.connect((sys.argv[1], int(sys.argv[2]))); print("open")\n'
    'except TimeoutError: print("dropped")\n'
    'except ConnectionRefusedError: print("refused")\' {address} {port}'
)


def probe(source: Any, address: str, port: int) -> str:
    """From host `source`: "open", "refused" (a reset) or "dropped" (no answer in 3 s)."""
    return str(source.check_output(_PROBE.format(address=address, port=port)))
