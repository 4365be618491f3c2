"""Measure the gateway's per-model routing: latency with few and many models, and how fast
spill-over reacts.

A script, not a test. For each model count N it renders the haproxy role's configuration and
routing maps for a site of N served models (one engine each) plus a cloud provider, runs the
controller's own HAProxy (the distribution's package, as on gateways: `apt-get install haproxy`)
against fake engines on the loopback, and measures:

  latency     p50/p99 of sequential HTTPS requests over one keep-alive connection, through the
              gateway to the first and the last model's engine, and to an engine directly
  spill-over  with model-0's engine slow (engine_maxconn 1, spill_over_queue 2), public
              requests sent every 20 ms: seconds from the request that found the queue over the
              threshold to the first answer routed to the cloud

  python tests/bench/bench_routing.py [--models 2 20] [--requests 2000]

Prints a table, then JSON. The gateway service is off: what is measured is HAProxy's routing.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-bench-routing-0123456789abcdef0123456789"
GATEWAY_PORT = 18443
STATS_PORT = 18405
CLOUD_PORT = 18444
ENGINE_BASE_PORT = 19000
SLOW_SECONDS = 0.5
SPILL_AT = 2

RENDER_TASKS = """\
---
- name: Render the HAProxy configuration
  ansible.builtin.template:
    src: "{{ bench_roles }}/haproxy/templates/haproxy.cfg.j2"
    dest: "{{ _haproxy_config_path }}"
    mode: "0644"

- name: Write the routing maps
  ansible.builtin.copy:
    content: "{{ item.value }}"
    dest: "{{ _haproxy_maps_dir }}/{{ item.key }}"
    mode: "0644"
  loop: "{{ _haproxy_routes.maps | dict2items }}"

- name: Write the API key, rate limit and upstream key maps
  ansible.builtin.copy:
    content: "{{ item.content }}"
    dest: "{{ item.dest }}"
    mode: "0600"
  vars:
    newline: "\n"
  loop:
    - dest: "{{ _haproxy_api_keys_map }}"
      content: >-
        {{ (haproxy_api_keys | onprem.llm.api_key_hash('haproxy_api_keys', 32) + [''])
           | join(newline) }}
    - dest: "{{ _haproxy_rate_limits_map }}"
      content: >-
        {{ lookup('ansible.builtin.template',
                  bench_roles ~ '/haproxy/templates/rate_limits.map.j2') }}
    - dest: "{{ _haproxy_upstream_keys_map }}"
      content: >-
        {{ lookup('ansible.builtin.template',
                  bench_roles ~ '/haproxy/templates/upstream_keys.map.j2') }}
"""


class FakeEngine(BaseHTTPRequestHandler):
    """An OpenAI-shaped answer naming the model; slow for model-0."""

    protocol_version = "HTTP/1.1"
    delay = 0.0
    # One segment per answer, sent at once: no Nagle / delayed-ACK stall in the timings.
    wbufsize = 65536
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def _answer(self, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer({"status": "ok"})

    def do_POST(self) -> None:
        request = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        time.sleep(self.delay)
        self._answer({"object": "chat.completion", "model": request.get("model"), "choices": []})


class QuietServer(ThreadingHTTPServer):
    """HAProxy's health checks hang up before reading the answer: not an error here."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def serve(port: int, delay: float, tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    handler = type("Engine", (FakeEngine,), {"delay": delay})
    server = QuietServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def site(models: int, work: Path) -> Path:
    engines = {
        f"engine-{i}": {
            "engine_device": "cpu",
            "engine_cpu_instances": 1,
            "engine_bind_address": "127.0.0.1",
            "engine_base_port": ENGINE_BASE_PORT + i,
            "engine_model": {"name": f"model-{i}", "context_length": 512},
        }
        for i in range(models)
    }
    gateway = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "haproxy_api_keys": {"bench": KEY},
        "haproxy_rate_limits": {"bench": 100_000_000},
        "haproxy_https_port": GATEWAY_PORT,
        "haproxy_stats_port": STATS_PORT,
        "haproxy_maxconn": 4000,
        "haproxy_health_check_interval": "500ms",
        "haproxy_data_classes": {
            "restricted": {"cloud_regions": []},
            "public": {"cloud_regions": ["*"]},
        },
        "haproxy_cloud_providers": {
            "bench-cloud": {
                "url": f"https://localhost:{CLOUD_PORT}/v1",
                "region": "bench",
                "api_key": "sk-bench-cloud",
                "ca_file": str(work / "cert.pem"),
            }
        },
        "haproxy_models": {
            "model-0": {"cloud": ["bench-cloud"], "spill_over_queue": SPILL_AT, "engine_maxconn": 1}
        },
    }
    inventory = {
        "all": {
            "children": {
                "engine_nodes": {"hosts": engines},
                "gateways": {"hosts": {"gateway-01": gateway}},
            }
        }
    }
    path = work / f"site-{models}.yml"
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def render(models: int, work: Path) -> Path:
    out = work / f"gateway-{models}"
    (out / "maps").mkdir(parents=True)
    role = work / "roles" / "bench_routing"
    if not role.exists():
        for part in ("defaults", "vars"):
            (role / part).mkdir(parents=True)
            shutil.copy(REPO_ROOT / "roles" / "haproxy" / part / "main.yml", role / part)
        (role / "tasks").mkdir()
        (role / "tasks" / "main.yml").write_text(RENDER_TASKS)
        (work / "render.yml").write_text(
            "- hosts: gateways\n  gather_facts: false\n  roles: [bench_routing]\n"
        )
    paths = {
        "_haproxy_config_path": str(out / "haproxy.cfg"),
        "_haproxy_maps_dir": str(out / "maps"),
        "_haproxy_api_keys_map": str(out / "maps" / "api_keys.map"),
        "_haproxy_rate_limits_map": str(out / "maps" / "rate_limits.map"),
        "_haproxy_upstream_keys_map": str(out / "maps" / "upstream_keys.map"),
        "_haproxy_certificate_bundle": str(work / "bundle.pem"),
        "_haproxy_admin_socket": str(out / "admin.sock"),
        "_haproxy_state_file": str(out / "server-state"),
        "bench_roles": str(REPO_ROOT / "roles"),
    }
    env = {
        **os.environ,
        "ANSIBLE_COLLECTIONS_PATH": str(REPO_ROOT / "collections"),
        "ANSIBLE_ROLES_PATH": str(work / "roles"),
        "ANSIBLE_NOCOLOR": "1",
    }
    command = ["ansible-playbook", "-i", str(site(models, work)), str(work / "render.yml")]
    result = subprocess.run(
        [*command, "-e", json.dumps(paths)], capture_output=True, text=True, env=env, check=False
    )
    if result.returncode != 0:
        raise SystemExit(result.stdout[-4000:] + result.stderr[-2000:])
    return out / "haproxy.cfg"


def certificate(work: Path) -> ssl.SSLContext:
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
            "-keyout", str(work / "key.pem"), "-out", str(work / "cert.pem"),
        ],
        capture_output=True,
        check=True,
    )  # fmt: skip
    (work / "bundle.pem").write_text(
        (work / "cert.pem").read_text() + (work / "key.pem").read_text()
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(work / "cert.pem", work / "key.pem")
    return context


def timed_requests(connection: http.client.HTTPConnection, model: str, count: int) -> list[float]:
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]})
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    times = []
    for _unused in range(count):
        start = time.perf_counter()
        connection.request("POST", "/v1/chat/completions", body, headers)
        response = connection.getresponse()
        answer = response.read()
        times.append((time.perf_counter() - start) * 1000)
        if response.status != 200:
            raise SystemExit(f"{model}: HTTP {response.status} {answer[:300]!r}")
    return times


def percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1], 3),
    }


def spill_over(tls_client: ssl.SSLContext) -> dict[str, float]:
    """Public requests to model-0 every 20 ms; the (maxconn + SPILL_AT + 1)-th is the first to
    find more than SPILL_AT waiting."""
    results: list[tuple[float, str]] = []
    lock = threading.Lock()

    def send(number: int) -> None:
        connection = http.client.HTTPSConnection("127.0.0.1", GATEWAY_PORT, context=tls_client)
        sent = time.perf_counter()
        body = json.dumps({"model": "model-0", "messages": []})
        headers = {"Authorization": f"Bearer {KEY}", "X-Data-Class": "public"}
        connection.request("POST", "/v1/chat/completions", body, headers)
        response = connection.getresponse()
        response.read()
        with lock:
            results.append((sent, response.getheader("X-Route") or str(response.status)))

    threads = []
    for number in range(12):
        thread = threading.Thread(target=send, args=(number,))
        thread.start()
        threads.append(thread)
        time.sleep(0.02)
    for thread in threads:
        thread.join()
    results.sort()
    over = results[1 + SPILL_AT][0]
    first_cloud = next(sent for sent, route in results if route.startswith("cloud:"))
    return {
        "reaction_s": round(first_cloud - over, 3),
        "routes": [route for _unused, route in results],
    }


def bench(models: int, count: int, work: Path, tls_client: ssl.SSLContext) -> dict:
    config = render(models, work)
    check = subprocess.run(
        ["haproxy", "-c", "-q", "-f", str(config)], capture_output=True, check=False
    )
    if check.returncode != 0:
        raise SystemExit(check.stderr.decode())
    pid = config.parent / "haproxy.pid"
    subprocess.run(["haproxy", "-D", "-f", str(config), "-p", str(pid)], check=True)
    try:
        time.sleep(2)  # health checks mark the engines up
        gateway = http.client.HTTPSConnection("127.0.0.1", GATEWAY_PORT, context=tls_client)
        timed_requests(gateway, "model-1", 100)  # warm up
        last = f"model-{models - 1}"
        result = {
            "models": models,
            "first": percentiles(timed_requests(gateway, "model-1", count)),
            "last": percentiles(timed_requests(gateway, last, count)),
        }
        direct = http.client.HTTPConnection("127.0.0.1", ENGINE_BASE_PORT + 1)
        result["engine_direct"] = percentiles(timed_requests(direct, "model-1", count))
        result["spill_over"] = spill_over(tls_client)
        return result
    finally:
        os.kill(int(pid.read_text().split()[0]), 15)
        time.sleep(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--models", type=int, nargs="+", default=[2, 20])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    if shutil.which("haproxy") is None:
        raise SystemExit("haproxy is not installed here: apt-get install haproxy")
    with tempfile.TemporaryDirectory(prefix="bench-routing.") as name:
        work = Path(name)
        tls_server = certificate(work)
        tls_client = ssl.create_default_context(cafile=str(work / "cert.pem"))
        tls_client.check_hostname = False
        serve(CLOUD_PORT, 0.0, tls_server)
        for i in range(max(args.models)):
            serve(ENGINE_BASE_PORT + i, SLOW_SECONDS if i == 0 else 0.0)
        results = [bench(n, args.requests, work, tls_client) for n in args.models]
    print(
        f"{'models':>7} {'first p50':>10} {'last p50':>9} {'p99':>7} {'direct':>7} {'spill s':>8}"
    )
    for r in results:
        print(
            f"{r['models']:>7} {r['first']['p50_ms']:>10} {r['last']['p50_ms']:>9} "
            f"{r['last']['p99_ms']:>7} {r['engine_direct']['p50_ms']:>7} "
            f"{r['spill_over']['reaction_s']:>8}"
        )
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
