"""Measure the semantic cache with a real embedding model and a real Redis 8, on this machine.

A script, not a test:

  make vllm-assets           # the vLLM CPU build venv and the embedding model
  python tests/bench/bench_semantic_cache.py [--lookups 300] [--json results.json]

What runs: vLLM's CPU build serving all-MiniLM-L6-v2 (.cache/embedding-model) with its pooling
runner; Debian 13's redis-server 8.0 from a debootstrap root (.cache/redis8-root, made once
with the redis-server package, run with chroot: no container registry needed); the gateway
service (onprem_llm.gateway) in this process. Its upstream is a small loopback app standing in
for HAProxy's loopback frontend: /v1/embeddings goes to vLLM (checking the X-Onprem-Backend
header the gateway sets), chat completions are answered with the question they were asked, so
a hit shows which stored question answered it.

  labelled set   tests/fixtures/semantic_cache_pairs.json: each pair in a tenant of its own
                 (no pair sees another's entries): the stored question, then the asked one;
                 hits and false hits by class at the default threshold, the similarity of each
                 pair, and what the threshold alone (no guard) would have let through
  isolation      two tenants, the same question: the second is not a hit
  latency        --lookups semantic lookups (embedding + VSIM + attributes) and as many exact
                 hits: p50 and p99 of each (goal: semantic p50 <= 30 ms)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "src"))

from onprem_llm.gateway.app import Gateway  # noqa: E402
from onprem_llm.gateway.cache_key import KeyInputs  # noqa: E402
from onprem_llm.gateway.config import parse_config  # noqa: E402
from onprem_llm.gateway.metrics import GatewayMetrics  # noqa: E402
from onprem_llm.gateway.semantic import guard_digest  # noqa: E402

PAIRS = REPO / "tests/fixtures/semantic_cache_pairs.json"
MODEL_DIR = REPO / ".cache/embedding-model"
VLLM_PYTHON = REPO / ".cache/vllm-build-venv/bin/python"
REDIS_ROOT = REPO / ".cache/redis8-root"
DEBIAN_MIRROR = os.environ.get("ONPREM_LLM_TEST_DEBIAN_MIRROR", "http://deb.debian.org/debian")
BACKEND = "model_minilm"
CHAT = "/v1/chat/completions"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# --- the real parts -----------------------------------------------------------------------


def redis8_root() -> Path:
    if not (REDIS_ROOT / "usr/bin/redis-server").exists():
        print("making a Debian 13 root with redis-server 8 (debootstrap, about a minute)")
        subprocess.run(
            [
                "debootstrap",
                "--variant=minbase",
                "--include=redis-server",
                "trixie",
                str(REDIS_ROOT),
                DEBIAN_MIRROR,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return REDIS_ROOT


def start_redis(port: int) -> subprocess.Popen[bytes]:
    root = redis8_root()
    command = ["chroot", str(root), "redis-server", "--port", str(port), "--bind", "127.0.0.1"]
    command += ["--save", "", "--appendonly", "no", "--protected-mode", "no"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)


def start_vllm(port: int, log: Path) -> subprocess.Popen[bytes]:
    if not (MODEL_DIR / "config.json").exists():
        subprocess.run([str(REPO / "tests/harness/fetch-embedding-model.sh")], check=True)
    command = [
        str(VLLM_PYTHON),
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(MODEL_DIR),
        "--served-model-name",
        "minilm",
        "--runner",
        "pooling",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "float32",
        "--max-model-len",
        "256",
    ]
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
    with log.open("wb") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)


async def wait_http(url: str, seconds: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + seconds
    async with ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{url}: the server exited with {process.returncode}")
            with contextlib.suppress(Exception):
                async with session.get(url) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{url}: not ready after {seconds} s")


def loopback_app(vllm_url: str) -> web.Application:
    """HAProxy's loopback frontend, as far as the gateway sees it."""
    app = web.Application()
    state: dict[str, Any] = {}

    async def start(_app: web.Application) -> None:
        state["session"] = ClientSession()

    async def stop(_app: web.Application) -> None:
        await state["session"].close()

    async def embeddings(request: web.Request) -> web.Response:
        if request.headers.get("X-Onprem-Backend") != BACKEND:
            return web.json_response({"error": "no route"}, status=503)
        async with state["session"].post(
            vllm_url + "/v1/embeddings",
            data=await request.read(),
            headers={"Content-Type": "application/json"},
        ) as response:
            body = await response.read()
            return web.Response(status=response.status, body=body, content_type="application/json")

    async def chat(request: web.Request) -> web.Response:
        body = await request.json()
        question = body["messages"][-1]["content"]
        message = {"role": "assistant", "content": f"answer to: {question}"}
        return web.json_response(
            {
                "id": "chatcmpl-bench",
                "object": "chat.completion",
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
            }
        )

    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_post(CHAT, chat)
    return app


def gateway_config(upstream: str, redis_port: int, tenants: list[str]) -> dict[str, Any]:
    return {
        "listen": {"host": "127.0.0.1", "port": 8480},
        "metrics_listen": None,
        "upstream_url": upstream,
        "redis": {
            "mode": "standalone",
            "hosts": [{"host": "127.0.0.1", "port": redis_port}],
            "lookup_budget_ms": 50,
        },
        "cache": {"lease_ms": 0},
        "models": {"tiny-llama": {"revision": "bench"}},
        "audit": {"path": None},
        "semantic": {
            "embedding_model": "minilm",
            "embedding_backend": BACKEND,
            "dimensions": 384,
            "timeout_ms": 1000,
            "tenants": {tenant: {} for tenant in tenants},
        },
    }


def chat_body(messages: list[dict[str, str]]) -> dict[str, Any]:
    return {"model": "tiny-llama", "messages": messages, "temperature": 0, "max_tokens": 32}


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


# --- the measurements ---------------------------------------------------------------------


class Bench:
    def __init__(self, client: Any, gateway: Gateway, vllm_url: str) -> None:
        self.client = client
        self.gateway = gateway
        self.vllm_url = vllm_url

    async def ask(self, tenant: str, messages: list[dict[str, str]]) -> tuple[str, Any, str]:
        response = await self.client.post(
            CHAT, json=chat_body(messages), headers={"X-Tenant-ID": tenant}
        )
        body = await response.json()
        await self.gateway.drain()
        return (
            response.headers.get("Cache-Status", ""),
            response.headers.get("X-Cache-Similarity"),
            body["choices"][0]["message"]["content"],
        )

    async def cosine(self, first: str, second: str) -> float:
        async with ClientSession() as session:
            payload = {"model": "minilm", "input": [first, second]}
            async with session.post(self.vllm_url + "/v1/embeddings", json=payload) as response:
                data = (await response.json())["data"]
        a, b = data[0]["embedding"], data[1]["embedding"]
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        norm = (sum(x * x for x in a) * sum(y * y for y in b)) ** 0.5
        return dot / norm

    async def labelled_set(self, pairs: list[dict[str, Any]], threshold: float) -> dict[str, Any]:
        rows = []
        for pair in pairs:
            tenant = "pair-" + pair["id"]
            stored_status, _similarity, _answer = await self.ask(tenant, user(pair["stored"]))
            assert "stored" in stored_status, (pair["id"], stored_status)
            turns = pair.get("asked_turns") or user(pair["asked"])
            status, similarity, answer = await self.ask(tenant, turns)
            last = turns[-1]["content"]
            cosine = await self.cosine(pair["stored"], last)
            hit = "detail=semantic" in status and status.startswith("onprem-llm; hit")
            reason = status.split("detail=semantic-")[1].split(";")[0] if not hit else "hit"
            rows.append(
                {
                    "id": pair["id"],
                    "class": pair["class"],
                    "expect": pair["expect"],
                    "hit": hit,
                    "reason": reason,
                    "similarity": float(similarity) if similarity else None,
                    "cosine": round(cosine, 4),
                    "threshold_alone": cosine >= threshold,
                    "guard_equal": guard_digest(pair["stored"]) == guard_digest(last),
                    "answered_by_stored": answer == f"answer to: {pair['stored']}",
                }
            )
        return {"rows": rows, "by_class": by_class(rows)}

    async def isolation(self) -> dict[str, Any]:
        question = "How do I rotate the API key of our staging cluster?"
        first, _s, _a = await self.ask("tenant-a", user(question))
        second, _s, answer = await self.ask("tenant-b", user(question))
        return {
            "tenant_a": first,
            "tenant_b": second,
            "cross_hit": second.startswith("onprem-llm; hit"),
            "tenant_b_answered_by_engine": answer == f"answer to: {question}",
        }

    async def latency(self, lookups: int) -> dict[str, Any]:
        semantic = self.gateway.semantic
        store = self.gateway.store
        assert semantic is not None and store is not None
        tenant = "latency"
        stored = "How do I reset the password of my workstation account?"
        await self.ask(tenant, user(stored))
        exact_times, semantic_times, hits = [], [], 0
        for index in range(lookups):
            asked = f"how can I reset my workstation account's password {'?' * (1 + index % 3)}"
            body = chat_body(user(asked))
            started = time.perf_counter()
            inputs = KeyInputs(
                scope=tenant,
                path=CHAT,
                model="tiny-llama",
                revision="bench",
                stream=False,
                excluded_fields=self.gateway.config.cache.excluded_fields,
            )
            found = await semantic.lookup(tenant=tenant, inputs=inputs, body=body, requested=None)
            semantic_times.append(time.perf_counter() - started)
            hits += found.result == "hit"
            response = await self.client.post(
                CHAT, json=chat_body(user(stored)), headers={"X-Tenant-ID": tenant}
            )
            await response.read()
            started = time.perf_counter()
            response = await self.client.post(
                CHAT, json=chat_body(user(stored)), headers={"X-Tenant-ID": tenant}
            )
            await response.read()
            exact_times.append(time.perf_counter() - started)
            assert response.headers["Cache-Status"].startswith("onprem-llm; hit")

        def summary(values: list[float]) -> dict[str, float]:
            return {
                "p50_ms": round(statistics.median(values) * 1000, 2),
                "p99_ms": round(percentile(values, 0.99) * 1000, 2),
            }

        embedding = self.gateway.metrics.semantic_embedding_duration
        return {
            "lookups": lookups,
            "semantic_lookup": summary(semantic_times),
            "semantic_hits": hits,
            "exact_hit_request": summary(exact_times),
            "embedding_calls": embedding.collect()[0].samples[-2].value,
        }


def by_class(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    table: dict[str, dict[str, Any]] = {}
    for row in rows:
        entry = table.setdefault(
            row["class"],
            {"pairs": 0, "hits": 0, "false_hits": 0, "threshold_alone": 0, "reasons": {}},
        )
        entry["pairs"] += 1
        entry["hits"] += row["hit"]
        entry["false_hits"] += row["hit"] and row["expect"] == "miss"
        entry["threshold_alone"] += row["threshold_alone"]
        entry["reasons"][row["reason"]] = entry["reasons"].get(row["reason"], 0) + 1
    return table


def print_report(result: dict[str, Any]) -> None:
    print("\nlabelled set (default threshold", result["threshold"], ")")
    print(f"{'class':<12} {'pairs':>5} {'hits':>5} {'false':>5} {'cos>=thr':>8}  reasons")
    for name, entry in result["labelled"]["by_class"].items():
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(entry["reasons"].items()))
        print(
            f"{name:<12} {entry['pairs']:>5} {entry['hits']:>5} {entry['false_hits']:>5} "
            f"{entry['threshold_alone']:>8}  {reasons}"
        )
    print("\nper pair (cosine of the two questions, result):")
    for row in result["labelled"]["rows"]:
        print(f"  {row['id']:<16} {row['cosine']:.3f} {row['reason']}")
    print("\nisolation:", json.dumps(result["isolation"]))
    print("latency:", json.dumps(result["latency"]))


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--lookups", type=int, default=300)
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument(
        "--vllm-url", help="an embedding server already running (served as minilm), not started"
    )
    args = parser.parse_args()
    pairs = json.loads(PAIRS.read_text())["pairs"]
    redis_port, vllm_port, loop_port = free_port(), free_port(), free_port()
    work = Path(tempfile.mkdtemp(prefix="bench-semantic-"))
    redis = start_redis(redis_port)
    started = time.monotonic()
    vllm = None if args.vllm_url else start_vllm(vllm_port, work / "vllm.log")
    vllm_url = args.vllm_url or f"http://127.0.0.1:{vllm_port}"
    runner = None
    try:
        if vllm is not None:
            await wait_http(vllm_url + "/health", 300, vllm)
            print(
                f"vLLM (pooling, all-MiniLM-L6-v2) ready after {time.monotonic() - started:.0f} s"
            )
        runner = web.AppRunner(loopback_app(vllm_url))
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", loop_port).start()
        tenants = ["pair-" + pair["id"] for pair in pairs] + ["tenant-a", "tenant-b", "latency"]
        config = parse_config(gateway_config(f"http://127.0.0.1:{loop_port}", redis_port, tenants))
        gateway = Gateway(config, metrics=GatewayMetrics())
        from aiohttp.test_utils import TestClient, TestServer

        async with TestClient(TestServer(gateway.app)) as client:
            bench = Bench(client, gateway, vllm_url)
            assert config.semantic is not None
            result = {
                "threshold": config.semantic.threshold,
                "redis": subprocess.run(
                    ["chroot", str(REDIS_ROOT), "redis-server", "--version"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip(),
                "labelled": await bench.labelled_set(pairs, config.semantic.threshold),
                "isolation": await bench.isolation(),
                "latency": await bench.latency(args.lookups),
            }
    finally:
        if runner is not None:
            await runner.cleanup()
        for process in (vllm, redis):
            if process is None:
                continue
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(30)
            if process.poll() is None:
                process.kill()
        shutil.rmtree(work, ignore_errors=True)
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
