"""Measure the gateway service's response cache through HAProxy's TLS listener.

A script, not a test. Against the serving scenario (or the lab) once converged:

  molecule converge -s serving
  python tests/bench/bench_cache.py \
      --inventory "$MOLECULE_EPHEMERAL_DIRECTORY/inventory/ansible_inventory.yml" \
      [--requests 400] [--seconds 15] [--drain model_tiny-llama/serving-engine3-0]

  hit latency     one deterministic completion stored, then --requests repeats on a kept-alive
                  HTTPS connection: p50 and p99 (goal: 2 ms and 5 ms)
  miss overhead   new deterministic completions (lookup, lease, engine, store) with the service,
                  and the same with the service set to maintenance in HAProxy (its backup path
                  goes straight to the engines), in alternating blocks: p50 of each and the
                  difference (goal: 1 ms)
  hits/s          8 client processes repeating stored requests for --seconds (goal: 1,000/s)
  Redis outage    3 clients with a mix of hits, misses and sampled requests while every Redis
                  host's redis-server is stopped for --outage-seconds: requests served and failed
                  (goal: all served)

Requests run on the client host (podman exec, Python standard library); a throwaway API key with
a high rate limit is added through HAProxy's runtime API and removed at the end. --drain takes
engine servers out of the gateways' balance for the run (the serving scenario's container-mode
engine is a stand-in that serves chat completions only).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_gateway import (
    KEYS_MAP,
    LIMITS_MAP,
    hosts_of,
    inventory_listing,
    percentile,
    podman_exec,
    runtime_api,
)

TENANT = "bench-cache"

# Runs on the client host: one JSON spec on stdin, one JSON result on stdout.
CLIENT = r"""
import http.client, json, os, ssl, sys, threading, time, urllib.parse
spec = json.load(sys.stdin)
url = urllib.parse.urlsplit(spec["base"])
context = ssl.create_default_context(cafile=spec["ca"])
headers = {"Authorization": "Bearer " + spec["key"], "Content-Type": "application/json"}

class Client:
    def __init__(self):
        self.conn = None
    def call(self, body):
        if self.conn is None:
            self.conn = http.client.HTTPSConnection(url.hostname, url.port or 443, timeout=120,
                                                    context=context)
        started = time.perf_counter()
        try:
            self.conn.request("POST", "/v1/completions", body=json.dumps(body), headers=headers)
            reply = self.conn.getresponse()
            reply.read()
        except Exception as error:
            self.conn.close()
            self.conn = None
            return 0, time.perf_counter() - started, "", repr(error)
        return (reply.status, time.perf_counter() - started,
                reply.getheader("Cache-Status") or "", "")

def body(prompt, temperature=0):
    return {"model": spec["model"], "prompt": prompt, "max_tokens": 1,
            "temperature": temperature}

def timed(bodies):
    client, samples, statuses = Client(), [], {}
    for item in bodies:
        status, seconds, cache, _ = client.call(item)
        kind = cache.split(";")[1].strip() if ";" in cache else str(status)
        statuses[kind] = statuses.get(kind, 0) + 1
        if status == 200:
            samples.append(seconds * 1000)
    return {"samples_ms": samples, "cache": statuses}

def load(seconds, workers, make_body, stop=None):
    lock, started = threading.Lock(), time.time()
    result = {"ok": 0, "failed": 0, "errors": [], "cache": {}}
    def worker(index):
        client, number = Client(), index
        while time.time() - started < seconds and not (stop and os.path.exists(stop)):
            number += workers
            status, _, cache, error = client.call(make_body(number))
            kind = cache.split(";")[1].strip() if ";" in cache else str(status)
            with lock:
                result["cache"][kind] = result["cache"].get(kind, 0) + 1
                if status == 200:
                    result["ok"] += 1
                else:
                    result["failed"] += 1
                    if len(result["errors"]) < 10:
                        result["errors"].append(f"{time.time() - started:.1f}s {status} {error}")
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result["seconds"] = round(time.time() - started, 2)
    result["per_second"] = round(result["ok"] / result["seconds"], 1)
    return result

mode = spec["mode"]
if mode == "hits":
    stored = body("bench hit " + spec["salt"])
    Client().call(stored)
    time.sleep(0.5)
    print(json.dumps(timed([stored] * spec["requests"])))
elif mode == "misses":
    print(json.dumps(timed([body("bench miss %s %d" % (spec["salt"], i))
                            for i in range(spec["requests"])])))
elif mode == "throughput":
    # Processes, not threads: one Python client is GIL-bound well below the gateway's rate.
    import multiprocessing
    prompts = ["bench hot %s %d" % (spec["salt"], i) for i in range(16)]
    for prompt in prompts:
        Client().call(body(prompt))
    time.sleep(0.5)
    def run(index, queue):
        queue.put(load(spec["seconds"], 1, lambda n: body(prompts[(n + index) % len(prompts)])))
    queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=run, args=(i, queue)) for i in range(spec["workers"])]
    for worker in workers:
        worker.start()
    parts = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    total = {"ok": sum(p["ok"] for p in parts), "failed": sum(p["failed"] for p in parts),
             "cache": {}, "seconds": max(p["seconds"] for p in parts)}
    for part in parts:
        for kind, count in part["cache"].items():
            total["cache"][kind] = total["cache"].get(kind, 0) + count
    total["per_second"] = round(total["ok"] / total["seconds"], 1)
    print(json.dumps(total))
elif mode == "outage":
    def mixed(n):
        kind = n % 3
        if kind == 0:
            return body("bench outage hot %d" % (n % 8))
        if kind == 1:
            return body("bench outage new %s %d" % (spec["salt"], n))
        return body("bench outage sampled", temperature=0.7)
    print(json.dumps(load(spec["seconds"], spec["workers"], mixed, spec["stop"])))
"""


def on_client(client: str, spec: dict, timeout: float = 3600) -> dict:
    return json.loads(podman_exec(client, ["python3", "-c", CLIENT], json.dumps(spec), timeout))


def service_state(gateways: list[str], state: str) -> None:
    for gateway in gateways:
        runtime_api(gateway, f"set server gateway_service/gateway_service state {state}")


def stats(samples: list[float]) -> dict:
    return {
        "n": len(samples),
        "p50_ms": round(percentile(samples, 0.5) or 0, 2),
        "p99_ms": round(percentile(samples, 0.99) or 0, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--inventory", default=os.environ.get("MOLECULE_INVENTORY_FILE", ""))
    parser.add_argument("--ca", default="/etc/onprem-llm-test-ca.crt", help="CA file on the client")
    parser.add_argument("--requests", type=int, default=400, help="samples per latency series")
    parser.add_argument("--seconds", type=float, default=15, help="hits/s round")
    parser.add_argument("--outage-seconds", type=float, default=10)
    parser.add_argument(
        "--drain",
        action="append",
        default=[],
        help="engine server to drain during the run (BACKEND/SERVER, e.g. model_tiny-llama/x-0)",
    )
    parser.add_argument("--model", default="tiny-llama", help="model the requests name")
    parser.add_argument("--json-out", help="also write the JSON result here")
    args = parser.parse_args()
    if not args.inventory or not Path(args.inventory).is_file():
        parser.error("--inventory: an inventory file (or set MOLECULE_INVENTORY_FILE)")
    listing = inventory_listing(args.inventory)
    groups = {name: group for name, group in listing.items() if name != "_meta"}
    gateways, redis = hosts_of(groups, "gateways"), hosts_of(groups, "redis")
    client = hosts_of(groups, "clients")[0]
    base = "https://" + podman_exec(gateways[0], ["hostname", "-I"]).split()[0]
    model = args.model

    key = "sk-bench-" + secrets.token_hex(24)
    digest = hashlib.sha256(key.encode()).hexdigest()
    for gateway in gateways:
        runtime_api(gateway, f"add map {KEYS_MAP} {digest} {TENANT}")
        runtime_api(gateway, f"add map {LIMITS_MAP} {TENANT} 100000000")
        for server in args.drain:
            runtime_api(gateway, f"set server {server} state drain")
    common = {"base": base, "ca": args.ca, "key": key, "model": model}
    salt = secrets.token_hex(4)
    result: dict = {"setup": {"gateway": base, "client": client, "model": model}}
    try:
        hits = on_client(
            client, {**common, "mode": "hits", "requests": args.requests, "salt": salt}
        )
        result["hit"] = {**stats(hits["samples_ms"]), "cache": hits["cache"]}

        # Alternating blocks, so a busy machine slows both paths alike.
        with_service: list[float] = []
        without_service: list[float] = []
        block = max(10, args.requests // 8)
        for index in range(8):
            direct = index % 2 == 1
            if direct:
                service_state(gateways, "maint")
            try:
                spec = {**common, "mode": "misses", "requests": block, "salt": f"{salt}-{index}"}
                (without_service if direct else with_service).extend(
                    on_client(client, spec)["samples_ms"]
                )
            finally:
                if direct:
                    service_state(gateways, "ready")
        result["miss_with_service"] = stats(with_service)
        result["miss_without_service"] = stats(without_service)
        result["miss_overhead_p50_ms"] = round(
            result["miss_with_service"]["p50_ms"] - result["miss_without_service"]["p50_ms"], 2
        )

        throughput = on_client(
            client,
            {**common, "mode": "throughput", "seconds": args.seconds, "workers": 8, "salt": salt},
        )
        result["hits_per_second_8_clients"] = {
            key: throughput[key] for key in ("per_second", "ok", "failed", "cache")
        }

        stop = f"/tmp/bench-cache-{salt}.stop"
        outcome: list[dict] = []
        spec = {**common, "mode": "outage", "seconds": 600, "workers": 3, "salt": salt}
        loader = threading.Thread(
            target=lambda: outcome.append(on_client(client, {**spec, "stop": stop}))
        )
        loader.start()
        time.sleep(3)
        for host in redis:
            podman_exec(host, ["systemctl", "stop", "redis-server"])
        time.sleep(args.outage_seconds)
        for host in redis:
            podman_exec(host, ["systemctl", "start", "redis-server"])
        time.sleep(3)
        podman_exec(client, ["touch", stop])
        loader.join(timeout=300)
        result["redis_outage"] = {
            key: outcome[0][key] for key in ("ok", "failed", "cache", "seconds", "errors")
        }
    finally:
        for gateway in gateways:
            runtime_api(gateway, f"del map {KEYS_MAP} {digest}")
            runtime_api(gateway, f"del map {LIMITS_MAP} {TENANT}")
            for server in args.drain:
                runtime_api(gateway, f"set server {server} state ready")

    rows = [
        ("exact hit p50 / p99 (ms)", f"{result['hit']['p50_ms']} / {result['hit']['p99_ms']}"),
        (
            "miss p50 with / without the service (ms)",
            f"{result['miss_with_service']['p50_ms']} / {result['miss_without_service']['p50_ms']}",
        ),
        ("miss overhead p50 (ms)", str(result["miss_overhead_p50_ms"])),
        ("hits/s, 8 clients", str(result["hits_per_second_8_clients"]["per_second"])),
        (
            "Redis outage: served / failed",
            f"{result['redis_outage']['ok']} / {result['redis_outage']['failed']}",
        ),
    ]
    width = max(len(name) for name, _unused in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(json.dumps(result, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
