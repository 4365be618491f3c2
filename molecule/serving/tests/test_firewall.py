"""Every host's firewall opens the ports its roles listen on, declared by those roles, and
nothing else: each listening socket is on loopback or open (the socket audit), and the engines
and Redis answer the gateways (and the engines the monitoring host, the client here) while the
cloud stand-in's host, in none of their groups, gets no answer."""

from __future__ import annotations

import socket_audit
import testinfra
from gateway_client import ENGINES, GATEWAYS, address

SERVERS = [
    "serving-gw1",
    "serving-gw2",
    "serving-engine1",
    "serving-engine2",
    "serving-engine3",
    "serving-engine4",
    "serving-span1",
    "serving-span2",
    "serving-redis1",
    "serving-redis2",
    "serving-redis3",
]
testinfra_hosts = [f"ansible://{name}" for name in SERVERS]

CLIENT = testinfra.get_host("ansible://serving-client")
OUTSIDER = testinfra.get_host("ansible://serving-cloud")
REDIS = testinfra.get_host("ansible://serving-redis1")


def test_every_listening_socket_is_on_loopback_or_opened_by_its_role(host):
    assert socket_audit.unexpected_listeners(host) == []


def test_the_ruleset_holds_the_rules_the_roles_declared(host):
    assert "policy drop" in host.check_output("nft list table inet onprem_llm")
    # Named in the configuration file: the kernel keeps no comments.
    ruleset = host.file("/etc/nftables.conf").content_string
    name = host.backend.host
    if name.startswith("serving-gw"):
        expected = [
            "# gateway-https",
            "# haproxy-exporter from groups monitoring",
            "# gateway-service-metrics from groups monitoring",
            "# keepalived-vrrp from groups gateways",
        ]
    elif name.startswith("serving-engine"):
        expected = ["# engine-8000 from groups gateways, monitoring"]
    elif name == "serving-span1":
        # The head serves; its worker reaches every port (the ranks' sockets).
        expected = [
            "# engine-8000 from groups gateways, monitoring",
            "# engine-span-serving-span2 from hosts serving-span2",
        ]
    elif name == "serving-span2":
        expected = ["# engine-span-serving-span1 from hosts serving-span1"]
        assert "engine-8000" not in ruleset, ruleset
    else:
        expected = [
            "# redis from groups gateways, redis",
            "# redis-sentinel",
            "# redis-exporter from groups monitoring",
        ]
    for comment in expected:
        assert comment in ruleset, ruleset


def test_engines_and_redis_answer_their_groups_only():
    gateway = GATEWAYS[0]
    for engine in ENGINES:
        assert socket_audit.probe(gateway, address(engine), 8000) == "open"
        assert socket_audit.probe(CLIENT, address(engine), 8000) == "open"
        # serving-engine3's port is published by docker: the forward chain holds it too.
        assert socket_audit.probe(OUTSIDER, address(engine), 8000) == "dropped"
    assert socket_audit.probe(gateway, address(REDIS), 6379) == "open"
    assert socket_audit.probe(CLIENT, address(REDIS), 6379) == "dropped"
    assert socket_audit.probe(OUTSIDER, address(REDIS), 6379) == "dropped"
    # The API port is open to the client networks, the cloud stand-in's host among them.
    assert socket_audit.probe(OUTSIDER, address(gateway), 443) == "open"
