"""Measure what the gateway costs: latency it adds, throughput with and without it, and a rolling
restart's duration and failed requests under load.

A script, not a test. It runs its requests from a host that reaches both the gateway and an
engine (by default the `clients` host of the inventory, through
`podman exec`), against the serving scenario or the lab:

  molecule converge -s serving
  python tests/bench/bench_gateway.py \
      --inventory "$MOLECULE_EPHEMERAL_DIRECTORY/inventory/ansible_inventory.yml" \
      [--requests 200] [--concurrency 4] [--seconds 20] [--rolling-restart]

  latency      the same small requests (GET /v1/models, POST /v1/completions max_tokens 1),
               alternating gateway (HTTPS through HAProxy) and the engine direct (HTTP), on
               kept-alive connections; p50 and p99 of each, and the difference
  throughput   --concurrency workers for --seconds each, gateway then direct then gateway
  restart      playbooks/rolling_restart.yml with --concurrency requests in flight through the
               gateway; its duration and the failed requests (target 0)

The gateway is the VIP when the inventory sets keepalived_virtual_ipaddress, else the first
gateway; the engine the first server of the gateways' `engines` backend, and while latency and
throughput are measured the other servers are drained on every gateway (and put back after), so
both paths end at the same engine. The bench adds a
throwaway API key with a high rate limit through HAProxy's runtime API on every gateway (so the
scenario's own keys and limits are untouched) and removes it at the end. Prints a table and JSON.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
SOCKET = "/run/haproxy/admin.sock"
KEYS_MAP = "/etc/haproxy/maps/api_keys.map"
LIMITS_MAP = "/etc/haproxy/maps/rate_limits.map"
TENANT = "bench-gateway"

# Runs on the client host (Python standard library only): one JSON spec on stdin, one JSON
# result on stdout.
CLIENT = r"""
import http.client, json, os, ssl, sys, threading, time, urllib.parse
spec = json.load(sys.stdin)
ca = spec.get("ca")

def connection(base):
    url = urllib.parse.urlsplit(base)
    if url.scheme == "https":
        context = ssl.create_default_context(cafile=ca)
        return http.client.HTTPSConnection(
            url.hostname, url.port or 443, timeout=120, context=context)
    return http.client.HTTPConnection(url.hostname, url.port or 80, timeout=120)

class Client:
    # One kept-alive connection, reopened after an error, as SDK clients pool them.
    def __init__(self, target):
        self.target, self.conn = target, None
    def call(self, method, path, body=None):
        if self.conn is None:
            self.conn = connection(self.target["base"])
        headers = dict(self.target.get("headers", {}))
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        started = time.perf_counter()
        try:
            self.conn.request(method, path, body=data, headers=headers)
            reply = self.conn.getresponse()
            payload = reply.read()
            status = reply.status
        except Exception as error:
            self.conn.close()
            self.conn = None
            return 0, time.perf_counter() - started, repr(error)
        if reply.getheader("Connection", "").lower() == "close":
            self.conn.close()
            self.conn = None
        return status, time.perf_counter() - started, payload[:200].decode(errors="replace")

def request_of(kind):
    if kind == "models":
        return "GET", "/v1/models", None
    return "POST", "/v1/completions", {"model": spec["model"], "prompt": "hello", "max_tokens": 1}

def latency():
    clients = {t["name"]: Client(t) for t in spec["targets"]}
    samples = {f"{t['name']} {k}": [] for t in spec["targets"] for k in spec["kinds"]}
    failures = {key: 0 for key in samples}
    for name, client in clients.items():  # open the connections, warm the path
        for kind in spec["kinds"]:
            client.call(*request_of(kind))
    for _ in range(spec["requests"]):
        for kind in spec["kinds"]:
            for name, client in clients.items():  # alternate: a busy machine slows both alike
                status, seconds, _ = client.call(*request_of(kind))
                key = f"{name} {kind}"
                if status == 200:
                    samples[key].append(seconds * 1000)
                else:
                    failures[key] += 1
    return {"samples_ms": samples, "failures": failures}

def load(target, seconds, stop=None, pause=0.0):
    lock, counts, errors = threading.Lock(), {"ok": 0, "failed": 0}, []
    started = time.time()
    def worker():
        client = Client(target)
        while time.time() - started < seconds and not (stop and os.path.exists(stop)):
            status, _, detail = client.call(*request_of("completion"))
            with lock:
                if status == 200:
                    counts["ok"] += 1
                else:
                    counts["failed"] += 1
                    if len(errors) < 20:
                        errors.append(f"{time.time() - started:.1f}s {status} {detail}")
            if pause:
                time.sleep(pause)
    threads = [threading.Thread(target=worker) for _ in range(spec["concurrency"])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.time() - started
    rps = round(counts["ok"] / elapsed, 2)
    return {**counts, "seconds": round(elapsed, 2), "rps": rps, "errors": errors}

if spec["mode"] == "model":
    conn = connection(spec["targets"][0]["base"])
    conn.request("GET", "/v1/models", headers=spec["targets"][0].get("headers", {}))
    result = {"model": json.loads(conn.getresponse().read())["data"][0]["id"]}
elif spec["mode"] == "latency":
    result = latency()
elif spec["mode"] == "throughput":
    targets = {t["name"]: t for t in spec["targets"]}
    rounds = [{"target": n, **load(targets[n], spec["seconds"])} for n in spec["order"]]
    result = {"rounds": rounds}
else:
    result = load(spec["targets"][0], spec["max_seconds"], spec["stop"], spec["pause"])
print(json.dumps(result))
"""


def podman_exec(host: str, command: list[str], stdin: str = "", timeout: float = 3600) -> str:
    result = subprocess.run(
        ["podman", "exec", "-i", host, *command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise SystemExit(
            f"{host}: {command[0]} failed ({result.returncode}): {result.stderr[-2000:]}"
        )
    return result.stdout


def runtime_api(gateway: str, command: str) -> str:
    return podman_exec(gateway, ["socat", "stdio", f"unix-connect:{SOCKET}"], command + "\n")


def on_client(client: str, spec: dict, timeout: float = 3600) -> dict:
    return json.loads(podman_exec(client, ["python3", "-c", CLIENT], json.dumps(spec), timeout))


def percentile(values: list[float], fraction: float) -> float | None:
    ordered = sorted(values)
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, round(fraction * len(ordered) + 0.5) - 1))
    return ordered[index]


def inventory_listing(inventory: str) -> dict:
    """ansible-inventory's --list of any inventory (molecule's or the lab's): groups, _meta."""
    return json.loads(
        subprocess.run(
            ["ansible-inventory", "-i", inventory, "--list"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )


def hosts_of(groups: dict, group: str) -> list[str]:
    return sorted((groups.get(group) or {}).get("hosts") or {})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    default_inventory = os.environ.get("MOLECULE_INVENTORY_FILE", "")
    parser.add_argument("--inventory", default=default_inventory, help="lab or scenario inventory")
    parser.add_argument("--client", help="host sending the requests (default: first of clients)")
    parser.add_argument("--gateway-url", help="default: https://VIP or https://first gateway")
    parser.add_argument("--engine-url", help="default: first server of the engines backend")
    parser.add_argument("--engine-key", default="", help="bearer key the engines require, if any")
    parser.add_argument("--ca", default="/etc/onprem-llm-test-ca.crt", help="CA file on the client")
    parser.add_argument(
        "--requests", type=int, default=200, help="latency samples per path and target"
    )
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20, help="per throughput round")
    parser.add_argument(
        "--rolling-restart", action="store_true", help="also time a rolling restart under load"
    )
    parser.add_argument(
        "-e", "--extra-vars", action="append", default=[], help="passed to the rolling restart"
    )
    parser.add_argument("--json-out", help="also write the JSON result here")
    args = parser.parse_args()
    if not args.inventory or not Path(args.inventory).is_file():
        parser.error("--inventory: an inventory file (or set MOLECULE_INVENTORY_FILE)")
    inventory = Path(args.inventory)
    listing = inventory_listing(args.inventory)
    groups = {name: group for name, group in listing.items() if name != "_meta"}
    gateways = hosts_of(groups, "gateways")
    client = args.client or hosts_of(groups, "clients")[0]
    gateway_vars = listing["_meta"]["hostvars"].get(gateways[0], {}) if gateways else {}

    vip = str(gateway_vars.get("keepalived_virtual_ipaddress", "")).split("/", maxsplit=1)[0]
    gateway_address = vip or podman_exec(gateways[0], ["hostname", "-I"]).split()[0]
    gateway_url = args.gateway_url or f"https://{gateway_address}"
    if args.engine_url:
        engine_url, engine_name = args.engine_url, args.engine_url
    else:
        # show servers state: be_id be_name srv_id srv_name srv_addr ... srv_port is field 18;
        # engines are in one backend per model (model_<name>).
        rows = engine_rows(gateways[0])
        engine_name = f"{rows[0][1]}/{rows[0][3]}"
        engine_url = f"http://{rows[0][4]}:{rows[0][18]}"

    key = "sk-bench-" + secrets.token_hex(24)
    digest = hashlib.sha256(key.encode()).hexdigest()
    for gateway in gateways:
        runtime_api(gateway, f"add map {KEYS_MAP} {digest} {TENANT}")
        runtime_api(gateway, f"add map {LIMITS_MAP} {TENANT} 100000000")
    try:
        gateway_target = {
            "name": "gateway",
            "base": gateway_url,
            "headers": {"Authorization": f"Bearer {key}"},
        }
        direct_target = {
            "name": "direct",
            "base": engine_url,
            "headers": {"Authorization": f"Bearer {args.engine_key}"} if args.engine_key else {},
        }
        common = {"ca": args.ca, "concurrency": args.concurrency}
        model = on_client(client, {**common, "mode": "model", "targets": [direct_target]})["model"]
        common["model"] = model
        # The gateway sends to the measured engine only: the other servers are drained for the
        # measurement (those already drained stay so) and put back after it.
        others = [] if args.engine_url else undrained_others(gateways, engine_name)
        set_state(gateways, others, "drain")
        try:
            latency, throughput = measure(client, common, gateway_target, direct_target, args)
        finally:
            set_state(gateways, others, "ready")
        restart = (
            rolling_restart(args, client, inventory, gateway_target, common)
            if args.rolling_restart
            else None
        )
    finally:
        for gateway in gateways:
            runtime_api(gateway, f"del map {KEYS_MAP} {digest}")
            runtime_api(gateway, f"del map {LIMITS_MAP} {TENANT}")

    result = summarize(latency, throughput, restart)
    result["setup"] = {
        "gateway": gateway_url,
        "engine": f"{engine_name} {engine_url}",
        "client": client,
        "model": model,
        "requests_per_path": args.requests,
        "concurrency": args.concurrency,
        "seconds_per_round": args.seconds,
    }
    print_table(result)
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    return 0


def engine_rows(gateway: str) -> list[list[str]]:
    """`show servers state` rows of the engines' backends (model_<name>)."""
    return [
        line.split()
        for line in runtime_api(gateway, "show servers state").splitlines()
        if line[:1].isdigit() and len(line.split()) > 18 and line.split()[1].startswith("model_")
    ]


def undrained_others(gateways: list[str], engine_name: str) -> list[tuple[str, str]]:
    """(gateway, backend/server) pairs of the other servers of the engine's backend that are
    not drained now."""
    backend = engine_name.split("/")[0]
    pairs = []
    for gateway in gateways:
        for row in engine_rows(gateway):
            # srv_admin_state (field 6) 0x08: drained through the runtime API.
            name = f"{row[1]}/{row[3]}"
            if row[1] == backend and name != engine_name and not int(row[6]) & 0x08:
                pairs.append((gateway, name))
    return pairs


def set_state(gateways: list[str], pairs: list[tuple[str, str]], state: str) -> None:
    for gateway, server in pairs:
        runtime_api(gateway, f"set server {server} state {state}")


def measure(client: str, common: dict, gateway_target: dict, direct_target: dict, args):
    latency = on_client(
        client,
        {
            **common,
            "mode": "latency",
            "targets": [gateway_target, direct_target],
            "kinds": ["models", "completion"],
            "requests": args.requests,
        },
    )
    throughput = on_client(
        client,
        {
            **common,
            "mode": "throughput",
            "targets": [gateway_target, direct_target],
            "order": ["gateway", "direct", "gateway", "direct"],
            "seconds": args.seconds,
        },
    )
    return latency, throughput


def rolling_restart(args, client: str, inventory: Path, target: dict, common: dict) -> dict:
    stop = "/tmp/bench-gateway-load.stop"
    podman_exec(client, ["rm", "-f", stop])
    box: dict = {}
    spec = {
        **common,
        "mode": "load",
        "targets": [target],
        "stop": stop,
        "max_seconds": 3000,
        "pause": 0.0,
    }
    load = threading.Thread(target=lambda: box.update(on_client(client, spec)))
    load.start()
    time.sleep(3)
    env = {
        **os.environ,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_COLLECTIONS_PATH": str(REPO_ROOT / "collections"),
    }
    started = time.time()
    playbook = subprocess.run(
        [
            "ansible-playbook",
            "-i",
            str(inventory),
            # Test hosts have no sudo: they are managed as root.
            "-e",
            "ansible_become=false",
            *(arg for value in args.extra_vars for arg in ("-e", value)),
            str(REPO_ROOT / "playbooks" / "rolling_restart.yml"),
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=REPO_ROOT,
    )
    duration = time.time() - started
    time.sleep(3)
    podman_exec(client, ["touch", stop])
    load.join()
    instances = playbook.stdout.count("TASK [Restart the instance (")
    return {
        "playbook_rc": playbook.returncode,
        "seconds": round(duration, 1),
        "instances": instances,
        "requests_ok": box.get("ok"),
        "requests_failed": box.get("failed"),
        "errors": box.get("errors"),
    }


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def cell(value: float | None) -> str:
    return f"{value:>10.2f}" if value is not None else f"{'-':>10}"


def summarize(latency: dict, throughput: dict, restart: dict | None) -> dict:
    lat = {}
    for key, values in latency["samples_ms"].items():
        lat[key] = {
            "n": len(values),
            "failed": latency["failures"][key],
            "p50_ms": rounded(percentile(values, 0.50)),
            "p99_ms": rounded(percentile(values, 0.99)),
        }
    added = {}
    for kind in ("models", "completion"):
        gateway, direct = lat[f"gateway {kind}"], lat[f"direct {kind}"]
        added[kind] = {
            "p50_ms": difference(gateway["p50_ms"], direct["p50_ms"]),
            "p99_ms": difference(gateway["p99_ms"], direct["p99_ms"]),
        }
    rounds = throughput["rounds"]
    rps = {
        name: [r["rps"] for r in rounds if r["target"] == name] for name in ("gateway", "direct")
    }
    return {
        "latency": lat,
        "gateway_adds": added,
        "throughput": {
            "rounds": [{k: r[k] for k in ("target", "ok", "failed", "rps")} for r in rounds],
            "gateway_rps": round(sum(rps["gateway"]) / len(rps["gateway"]), 2),
            "direct_rps": round(sum(rps["direct"]) / len(rps["direct"]), 2),
        },
        "rolling_restart": restart,
    }


def print_table(result: dict) -> None:
    print(f"{'latency (ms)':<22}{'n':>6}{'fail':>6}{'p50':>10}{'p99':>10}")
    for key, row in result["latency"].items():
        print(f"{key:<22}{row['n']:>6}{row['failed']:>6}{cell(row['p50_ms'])}{cell(row['p99_ms'])}")
    for kind, row in result["gateway_adds"].items():
        print(f"{'gateway adds ' + kind:<34}{cell(row['p50_ms'])}{cell(row['p99_ms'])}")
    t = result["throughput"]
    print(
        "throughput (completions/s, max_tokens 1):"
        f" gateway {t['gateway_rps']}  direct {t['direct_rps']}"
    )
    for r in t["rounds"]:
        print(f"  {r['target']:<8} ok {r['ok']:>6}  failed {r['failed']:>4}  {r['rps']:>8} /s")
    if result["rolling_restart"]:
        r = result["rolling_restart"]
        print(
            f"rolling restart: {r['instances']} instances in {r['seconds']} s,"
            f" rc {r['playbook_rc']},"
            f" requests ok {r['requests_ok']}, failed {r['requests_failed']}"
        )


if __name__ == "__main__":
    sys.exit(main())
