"""Rolling restarts under load. An engine setting changed in the inventory and applied by the
scenario's converge (site.yml's plays): the engine role leaves the serving instances running and
marks them, and rolling_restart.yml, imported after the gateways, restarts them one at a time
behind the gateways while the client keeps a few requests in flight. No request may fail; every
instance must have restarted, one after the other, with the new setting; every server is UP at
the end. And rolling_restart.yml run by hand: a failed restart stops the run.

Hosts, the gateway address (the VIP when the scenario has one) and a test key are read from the
scenario's inventory; the playbooks run with that inventory, as an operator would run them.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
import time
from pathlib import Path

import pytest
import scenario_playbooks
import testinfra
import yaml
from gateway_client import CLIENT_DIR

REPO_ROOT = Path(__file__).resolve().parents[3]
INVENTORY = Path(os.environ.get("MOLECULE_INVENTORY_FILE", "/nonexistent"))
EPHEMERAL = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/tmp"))
UNITS = "onprem-llm-engine@*.service"
UNIT_ZERO = "onprem-llm-engine@0.service"
# The files by which the engine role marks instances that wait for the rolling restart.
PENDING_MARKS = "/run/onprem-llm-engine@*.restart-pending"
SCENARIO_DIR = Path(__file__).resolve().parents[1]
# Bounds of the load: concurrent requests, and at most this many requests or seconds.
CONCURRENCY = 2
MAX_REQUESTS = 20000
MAX_SECONDS = 1500
# Pause of each worker between requests. Each instance must have idle seconds: a vLLM CPU worker
# polls its queue with sched_yield for 1 s after each step, and on the test machine's kernel
# (6.18, EEVDF) a restarting instance that moves its engine process onto that core is not
# scheduled while the poll lasts (seen: stuck in sched_setaffinity for 10 minutes).
PAUSE = 2.0


def _group_vars(group: str) -> dict:
    path = INVENTORY.parent / "group_vars" / group
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}


def _inventory() -> tuple[dict, dict]:
    if not INVENTORY.is_file():
        return {}, {}
    return yaml.safe_load(INVENTORY.read_text()), _group_vars("gateways")


def _hosts(group: str) -> list[str]:
    return sorted((GROUPS.get(group) or {}).get("hosts") or {})


GROUPS, GATEWAY_VARS = _inventory()
GATEWAYS = _hosts("gateways")
# The engine hosts the playbook restarts (its rolling_restart_hosts, engine_nodes by default).
ENGINE_GROUP = _group_vars("all").get("rolling_restart_hosts", "engine_nodes")
ENGINE_HOSTS = _hosts(ENGINE_GROUP)
CLIENT = (_hosts("clients") or ["client"])[0]
VIP = str(GATEWAY_VARS.get("keepalived_virtual_ipaddress", "")).split("/", maxsplit=1)[0]
KEY = next(iter((GATEWAY_VARS.get("haproxy_api_keys") or {"-": ""}).values()))

testinfra_hosts = [f"ansible://{CLIENT}"]


MISSING = not GATEWAYS or not ENGINE_HOSTS
if MISSING and os.environ.get("CI", "").lower() == "true":
    pytest.fail(
        "the scenario has no gateways or engine hosts (CI=true: a test may not be skipped)",
        pytrace=False,
    )
pytestmark = pytest.mark.skipif(MISSING, reason="the scenario has no gateways or engine hosts")


def unit_properties(*names: str) -> dict[str, dict[str, str]]:
    """Each active engine instance unit ("host/unit") and the systemd properties asked for, by
    name (systemctl prints them in its own order, not in the order asked)."""
    found = {}
    for name in ENGINE_HOSTS:
        engine = testinfra.get_host(f"ansible://{name}")
        units = engine.check_output(
            f"systemctl list-units --plain --no-legend --state=active '{UNITS}'"
        )
        for unit in (line.split()[0] for line in units.splitlines() if line.strip()):
            shown = engine.check_output(
                f"systemctl show {' '.join('-p ' + n for n in names)} {unit}"
            )
            found[f"{name}/{unit}"] = dict(
                line.split("=", 1) for line in shown.splitlines() if "=" in line
            )
    return found


def invocations() -> dict[str, str]:
    """Each engine instance unit and the id of its current run (new on every start)."""
    return {unit: shown["InvocationID"] for unit, shown in unit_properties("InvocationID").items()}


def server_states() -> dict[str, str]:
    states = {}
    for name in GATEWAYS:
        stat = testinfra.get_host(f"ansible://{name}").check_output(
            "echo 'show stat' | socat stdio unix-connect:/run/haproxy/admin.sock"
        )
        for row in (line.split(",") for line in stat.splitlines()):
            if row[0] == "model_tiny-llama" and row[1] not in ("FRONTEND", "BACKEND"):
                states[f"{name}/{row[1]}"] = row[17]
    return states


# The setting the test changes: an environment variable of every instance of the model.
CHANGED_VARIABLE = "ONPREM_LLM_TEST_ROLLING_SETTING"


def change_engine_setting(value: str) -> None:
    """Add CHANGED_VARIABLE to engine_extra_env in the host_vars of every restarted engine host,
    keeping the value each has from the inventory, as an operator edits theirs."""
    for name in ENGINE_HOSTS:
        current = subprocess.run(
            ["ansible-inventory", "-i", str(INVENTORY.parent), "--host", name],
            capture_output=True,
            text=True,
            check=True,
        )
        environment = json.loads(current.stdout).get("engine_extra_env") or {}
        path = INVENTORY.parent / "host_vars" / name
        settings = (yaml.safe_load(path.read_text()) or {}) if path.is_file() else {}
        settings["engine_extra_env"] = {**environment, CHANGED_VARIABLE: value}
        path.parent.mkdir(exist_ok=True)
        path.write_text(yaml.safe_dump(settings))


def restart_times() -> dict[str, tuple[int, int]]:
    """Each instance unit's last stop and start, on the monotonic clock the test hosts share."""
    stop, start = "InactiveEnterTimestampMonotonic", "ActiveEnterTimestampMonotonic"
    return {
        unit: (int(shown[stop]), int(shown[start]))
        for unit, shown in unit_properties(stop, start).items()
    }


def test_a_changed_engine_setting_restarts_each_instance_in_turn_under_load(host):
    assert server_states() and all(s.startswith("UP") for s in server_states().values())
    before = invocations()
    assert before, f"no active {UNITS} on {ENGINE_HOSTS}"
    address = (
        VIP or testinfra.get_host(f"ansible://{GATEWAYS[0]}").check_output("hostname -I").split()[0]
    )
    stop = "/tmp/rolling-restart-load.stop"
    host.check_output(f"rm -f {stop}")
    value = f"changed-{time.time_ns()}"
    change_engine_setting(value)

    load_output: list[str] = []
    load = threading.Thread(
        target=lambda: load_output.append(
            subprocess.run(
                [
                    "podman",
                    "exec",
                    CLIENT,
                    "python3",
                    f"{CLIENT_DIR}/rolling_load.py",
                    f"https://{address}",
                    KEY,
                    str(CONCURRENCY),
                    str(MAX_REQUESTS),
                    str(MAX_SECONDS),
                    stop,
                    str(PAUSE),
                ],
                capture_output=True,
                text=True,
                timeout=MAX_SECONDS + 120,
                check=False,
            ).stdout
        )
    )
    load.start()
    time.sleep(5)  # requests in flight before the first drain
    started = time.time()
    output, converged, _unused = scenario_playbooks.run_playbook(
        SCENARIO_DIR / "converge.yml", "--limit", ENGINE_GROUP, timeout=MAX_SECONDS
    )
    duration = time.time() - started
    time.sleep(3)  # requests in flight after the last instance came back
    host.check_output(f"touch {stop}")
    load.join(timeout=300)

    assert converged, output[-8000:]
    summary = json.loads(load_output[0])
    after = invocations()
    report = {
        "converge_with_rolling_restart_seconds": round(duration, 1),
        "instances": len(before),
        "requests_ok": summary["ok"],
        "requests_failed": summary["failed"],
        "load_seconds": summary["seconds"],
    }
    (EPHEMERAL / "rolling_restart.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report))

    assert summary["failed"] == 0, summary["errors"]
    assert summary["ok"] >= 10 * len(before), summary
    # Every instance was restarted, and is running again under the same unit.
    assert set(after) == set(before)
    assert [unit for unit in before if before[unit] == after[unit]] == []
    # One at a time: each instance stopped only after the one before it had started again.
    order = sorted(restart_times().items(), key=lambda item: item[1][0])
    overlapping = [
        (earlier[0], later[0])
        for earlier, later in itertools.pairwise(order)
        if later[1][0] < earlier[1][1]
    ]
    assert overlapping == [], order
    # Each native instance runs the new setting; nothing is left waiting for a restart.
    for name in ENGINE_HOSTS:
        engine = testinfra.get_host(f"ansible://{name}")
        assert engine.check_output(f"ls {PENDING_MARKS} 2>/dev/null || true") == ""
        if name in _hosts("native_engines"):
            pid = engine.check_output(f"systemctl show -p MainPID --value {UNIT_ZERO}")
            environment = engine.check_output(f"tr '\\0' '\\n' < /proc/{pid}/environ")
            assert f"{CHANGED_VARIABLE}={value}" in environment.splitlines()
    # Every gateway sees every server UP again (none left drained).
    states = server_states()
    assert states and all(state.startswith("UP") for state in states.values()), states


def admin_drained(server: str) -> dict[str, bool]:
    """Per gateway: whether `server` is drained by the runtime API (admin state flag 0x08)."""
    drained = {}
    for name in GATEWAYS:
        state = testinfra.get_host(f"ansible://{name}").check_output(
            "echo 'show servers state' | socat stdio unix-connect:/run/haproxy/admin.sock"
        )
        for row in (
            line.split()
            for line in state.splitlines()
            if line[:1].isdigit() and len(line.split()) > 18
        ):
            if row[3] == server:
                drained[name] = bool(int(row[6]) & 0x08)
    return drained


def first_instance(engine_host: str) -> tuple[str, str]:
    """The host's first instance: its unit (lowest index) and its server name in the backend
    (lowest port at the host's address; the engine role numbers ports by instance index)."""
    engine = testinfra.get_host(f"ansible://{engine_host}")
    units = engine.check_output(
        f"systemctl list-units --plain --no-legend --state=active '{UNITS}'"
    )
    unit = sorted(line.split()[0] for line in units.splitlines() if line.strip())[0]
    addresses = engine.check_output("hostname -I").split()
    state = testinfra.get_host(f"ansible://{GATEWAYS[0]}").check_output(
        "echo 'show servers state' | socat stdio unix-connect:/run/haproxy/admin.sock"
    )
    rows = [
        line.split() for line in state.splitlines() if line[:1].isdigit() and len(line.split()) > 18
    ]
    server = min((r for r in rows if r[4] in addresses), key=lambda r: int(r[18]))[3]
    return unit, server


def run_playbook(*extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_COLLECTIONS_PATH": f"{REPO_ROOT}/collections",
    }
    return subprocess.run(
        # Test hosts have no sudo: the scenario's hosts are managed as root.
        [
            "ansible-playbook",
            "-i",
            str(INVENTORY),
            "-e",
            "ansible_become=false",
            # Play keywords (hosts) take only extra vars, not inventory variables.
            "-e",
            f"rolling_restart_hosts={ENGINE_GROUP}",
            *extra,
            str(REPO_ROOT / "playbooks" / "rolling_restart.yml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=MAX_SECONDS,
        check=False,
        cwd=REPO_ROOT,
    )


def test_a_failed_restart_stops_the_run_and_leaves_that_instance_drained(host):
    engine_host = ENGINE_HOSTS[0]
    engine = testinfra.get_host(f"ansible://{engine_host}")
    unit, server = first_instance(engine_host)
    dropin = f"/run/systemd/system/{unit}.d"
    address = (
        VIP or testinfra.get_host(f"ansible://{GATEWAYS[0]}").check_output("hostname -I").split()[0]
    )
    try:
        # The instance cannot start again: its health check never answers.
        engine.check_output(
            f"mkdir -p {dropin} && printf '[Service]\\nExecStart=\\nExecStart=/bin/false\\n'"
            f" > {dropin}/broken.conf && systemctl daemon-reload"
        )
        result = run_playbook(
            "-l",
            engine_host,
            "-e",
            "rolling_restart_health_timeout=10",
            "-e",
            json.dumps({"rolling_restart_instances": [server]}),
        )
        assert result.returncode != 0, result.stdout[-4000:]
        assert "Set the servers ready on every gateway" not in result.stdout
        # Left drained on every gateway; the others still answer through the gateway.
        assert admin_drained(server) == {name: True for name in GATEWAYS}
        out = host.check_output(f"python3 {CLIENT_DIR}/one_request.py https://{address} '{KEY}'")
        assert out.strip() == "200"
    finally:
        engine.check_output(f"rm -rf {dropin} && systemctl daemon-reload")
        # The playbook itself brings the drained instance back.
        recovered = run_playbook(
            "-l", engine_host, "-e", json.dumps({"rolling_restart_instances": [server]})
        )
    assert recovered.returncode == 0, recovered.stdout[-4000:]
    assert admin_drained(server) == {name: False for name in GATEWAYS}
