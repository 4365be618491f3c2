"""The gateways' virtual IP (keepalived): it answers HTTPS from the client, and moves to the other
gateway when HAProxy stops on the one holding it, so requests through the VIP keep succeeding.

Hosts, the VIP and a test key are read from the scenario's inventory; state is restored after.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import testinfra
import yaml
from gateway_client import CLIENT_DIR

INVENTORY = Path(os.environ.get("MOLECULE_INVENTORY_FILE", "/nonexistent"))


def _inventory() -> tuple[dict, dict]:
    if not INVENTORY.is_file():
        return {}, {}
    groups = yaml.safe_load(INVENTORY.read_text())
    group_vars = INVENTORY.parent / "group_vars" / "gateways"
    return groups, (yaml.safe_load(group_vars.read_text()) if group_vars.is_file() else {})


GROUPS, GATEWAY_VARS = _inventory()
GATEWAYS = sorted((GROUPS.get("gateways") or {}).get("hosts") or {})
CLIENT = sorted((GROUPS.get("clients") or {}).get("hosts") or {"client": None})[0]
VIP = str(GATEWAY_VARS.get("keepalived_virtual_ipaddress", "")).split("/", maxsplit=1)[0]
KEY = next(iter((GATEWAY_VARS.get("haproxy_api_keys") or {"-": ""}).values()))

testinfra_hosts = [f"ansible://{CLIENT}"]

MISSING = not VIP or len(GATEWAYS) < 2
if MISSING and os.environ.get("CI", "").lower() == "true":
    pytest.fail(
        "the scenario has no virtual IP over two gateways (CI=true: a test may not be skipped)",
        pytrace=False,
    )
pytestmark = pytest.mark.skipif(MISSING, reason="the scenario has no virtual IP over two gateways")


def gateway(name):
    return testinfra.get_host(f"ansible://{name}")


def holders():
    """Gateways that hold the VIP on an interface now."""
    return [
        name for name in GATEWAYS if f" {VIP}/" in gateway(name).check_output("ip -o -4 addr show")
    ]


def wait_for_holder(expected, timeout=40):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if holders() == [expected]:
            return time.time()
        time.sleep(0.5)
    raise AssertionError(f"VIP {VIP} held by {holders()}, expected only {expected}")


def statuses(host, count):
    out = host.check_output(
        f"python3 {CLIENT_DIR}/vip_requests.py https://{VIP}/v1/models '{KEY}' {count}"
    )
    return [line.split()[0] for line in out.splitlines()]


def logged_requests(name):
    journal = gateway(name).check_output("journalctl -u haproxy --no-pager -o cat")
    return sum(
        1
        for line in journal.splitlines()
        if line.startswith("{") and json.loads(line).get("path") == "/v1/models"
    )


def wait_until_served(host, timeout=30):
    # After a move the client learns the VIP's new MAC from keepalived's gratuitous ARP.
    deadline = time.time() + timeout
    while time.time() < deadline:
        if statuses(host, 1) == ["200"]:
            return
        time.sleep(0.5)
    raise AssertionError(f"https://{VIP} did not answer 200 within {timeout}s")


def test_one_gateway_holds_the_vip_and_it_answers_https(host):
    assert len(holders()) == 1, holders()
    assert statuses(host, 5) == ["200"] * 5


@pytest.mark.parametrize("stopped", ["haproxy", "keepalived"])
def test_vip_moves_when_the_holder_fails(host, stopped):
    master = holders()[0]
    other = next(name for name in GATEWAYS if name != master)
    started = time.time()
    try:
        gateway(master).check_output(f"systemctl stop {stopped}")
        moved = wait_for_holder(other)
        wait_until_served(host)
        served = time.time()
        # Every request through the VIP is answered, by HAProxy on the other gateway (one
        # access log line per request).
        before = logged_requests(other)
        assert statuses(host, 10) == ["200"] * 10
        deadline = time.time() + 10
        while logged_requests(other) < before + 10 and time.time() < deadline:
            time.sleep(0.5)
        assert logged_requests(other) >= before + 10
        print(
            json.dumps(
                {
                    "stopped": f"{stopped} on {master}",
                    "vip_moved_s": round(moved - started, 1),
                    "served_again_s": round(served - started, 1),
                }
            )
        )
    finally:
        gateway(master).check_output(f"systemctl start {stopped}")
    # Without nopreempt the first gateway (higher priority) takes the VIP back once HAProxy
    # answers again.
    wait_for_holder(master, timeout=60)
    wait_until_served(host)
    assert statuses(host, 3) == ["200"] * 3
