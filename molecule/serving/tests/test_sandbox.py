"""The services this collection runs on the serving hosts are sandboxed (systemd-analyze
security, at most molecule/unit_sandbox.EXPOSURE_LIMIT) and the sandbox is in force on the
running processes. The other tests of this scenario prove that they serve with it."""

from __future__ import annotations

import pytest
import testinfra
from gateway_client import CONTAINER, GATEWAYS, NATIVE, UNIT
from unit_sandbox import assert_sandboxed

testinfra_hosts = ["ansible://serving-client"]

SANDBOXED = [
    (NATIVE[0], UNIT),
    (CONTAINER, UNIT),
    (GATEWAYS[0], "haproxy.service"),
    (GATEWAYS[0], "onprem-llm-gateway.service"),
    # The TLS terminator of the Redis exporter's metrics.
    (testinfra.get_host("ansible://serving-redis1"), "onprem-llm-redis-exporter-tls.service"),
]


@pytest.mark.parametrize(
    ("host", "unit"), SANDBOXED, ids=[f"{host.backend.host}-{unit}" for host, unit in SANDBOXED]
)
def test_service_is_sandboxed(host, unit):
    assert host.service(unit).is_running
    assert_sandboxed(host, unit)


def _process_status(host, unit):
    pid = host.check_output("systemctl show --property MainPID --value %s", unit)
    assert pid not in ("", "0"), f"{unit} is not running"
    return dict(
        line.split(":\t", 1)
        for line in host.check_output("cat /proc/%s/status", pid).splitlines()
        if ":\t" in line
    )


def test_a_native_engine_runs_without_privileges():
    status = _process_status(NATIVE[0], UNIT)
    assert status["NoNewPrivs"].strip() == "1"
    assert int(status["CapBnd"], 16) == 0, status["CapBnd"]
    assert status["Seccomp"].strip() == "2"  # a system call filter


def test_haproxy_keeps_only_the_capabilities_it_needs():
    # CAP_KILL, CAP_SETGID, CAP_SETUID, CAP_NET_BIND_SERVICE, CAP_SYS_CHROOT
    expected = (1 << 5) | (1 << 6) | (1 << 7) | (1 << 10) | (1 << 18)
    status = _process_status(GATEWAYS[0], "haproxy.service")
    assert int(status["CapBnd"], 16) == expected, status["CapBnd"]


def test_a_native_engine_cannot_write_outside_its_home():
    host = NATIVE[0]
    pid = host.check_output("systemctl show --property MainPID --value %s", UNIT)
    # Its mount namespace, as the engine sees it: the system read-only, its home writable.
    mounts = host.check_output("cat /proc/%s/mountinfo", pid).splitlines()
    options = {line.split()[4]: line.split()[5] for line in mounts}
    assert options["/"].startswith("ro"), options["/"]
    assert options["/var/lib/onprem-llm-engine"].startswith("rw"), options
