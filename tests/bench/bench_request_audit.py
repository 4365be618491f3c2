"""Measure what the request audit adds to a request through the gateway service.

A script, not a test; runs on the controller, in-process, no test hosts:

  python tests/bench/bench_request_audit.py [--requests 2000] [--rounds 5]

Three gateway services, each in front of the same local engine stand-in (an aiohttp server that
answers chat completions at once), the cache off so that every request is forwarded: audit off,
audit on (records without text), and audit on with content logging for the tenant (redaction
and pseudonymisation of every request). Requests go one at a time on a kept-alive connection,
in alternating blocks so that drift affects all three alike. Prints p50 and p99 of each and the
differences (goal: 0.2 ms p50 added), and the records written.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
from onprem_llm.gateway.app import Gateway
from onprem_llm.gateway.config import parse_config

TENANT = "bench"
HEADERS = {
    "Content-Type": "application/json",
    "X-Tenant-ID": TENANT,
    "X-API-Key-ID": "5f1d2c3b4a596877",
    "X-Onprem-Route": "on-prem",
    "X-Onprem-Data-Class": "internal",
    "X-Onprem-Request-ID": "0b6c5a1e-6f3e-4c52-9d7e-1f2a3b4c5d6e",
}
BODY = json.dumps(
    {
        "model": "tiny-llama",
        "messages": [
            {"role": "system", "content": "You answer questions about invoices."},
            {
                "role": "user",
                "content": "Customer jane.doe@example.org (+49 30 1234567) paid 1,250.00 EUR "
                "from DE89 3704 0044 0532 0130 00 on invoice 2026-0117. Summarise the case.",
            },
        ],
        "max_tokens": 16,
        "user": "customer-4711",
    }
).encode()
ANSWER = {
    "id": "cmpl-1",
    "object": "chat.completion",
    "model": "tiny-llama",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Invoice 2026-0117 was paid in full."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 61, "completion_tokens": 9, "total_tokens": 70},
}


async def start(app: web.Application) -> tuple[web.AppRunner, int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, port


def gateway_config(upstream_port: int, audit: dict[str, Any]) -> Any:
    return parse_config(
        {
            "listen": {"host": "127.0.0.1", "port": 1},
            "upstream_url": f"http://127.0.0.1:{upstream_port}",
            "cache": {"enabled": False},
            "models": {"tiny-llama": {"revision": "r1"}},
            "audit": audit,
        }
    )


async def block(session: aiohttp.ClientSession, url: str, count: int) -> list[float]:
    times = []
    for _unused in range(count):
        started = time.perf_counter()
        async with session.post(url, data=BODY, headers=HEADERS) as response:
            await response.read()
            assert response.status == 200, response.status
        times.append((time.perf_counter() - started) * 1000)
    return times


async def run(requests: int, rounds: int) -> dict[str, Any]:
    async def answer(_request: web.Request) -> web.Response:
        await _request.read()
        return web.json_response(ANSWER)

    engine = web.Application()
    engine.router.add_post("/v1/chat/completions", answer)
    engine_runner, engine_port = await start(engine)
    workdir = Path(tempfile.mkdtemp(prefix="bench-request-audit-"))
    key_file = workdir / "key"
    key_file.write_text("bench-pseudonymisation-key-0123456789abcdef\n")
    variants = {
        "off": {},
        "records": {"path": str(workdir / "records.jsonl")},
        "content": {
            "path": str(workdir / "with-content.jsonl"),
            "content_path": str(workdir / "content.jsonl"),
            "content_tenants": [TENANT],
            "pseudonymisation_key_file": str(key_file),
        },
    }
    runners, urls = [], {}
    for name, audit in variants.items():
        gateway = Gateway(gateway_config(engine_port, audit))
        runner, port = await start(gateway.app)
        runners.append(runner)
        urls[name] = f"http://127.0.0.1:{port}/v1/chat/completions"
    times: dict[str, list[float]] = {name: [] for name in variants}
    try:
        async with aiohttp.ClientSession() as session:
            for name in variants:  # warm up connections and code paths
                await block(session, urls[name], 50)
            per_block = max(1, requests // rounds)
            for _unused in range(rounds):
                for name in variants:
                    times[name] += await block(session, urls[name], per_block)
    finally:
        for runner in [*runners, engine_runner]:
            await runner.cleanup()
    result: dict[str, Any] = {}
    for name, values in times.items():
        values.sort()
        result[name] = {
            "requests": len(values),
            "p50_ms": round(statistics.median(values), 3),
            "p99_ms": round(values[int(len(values) * 0.99) - 1], 3),
        }
    for name in ("records", "content"):
        result[f"{name}_added_p50_ms"] = round(result[name]["p50_ms"] - result["off"]["p50_ms"], 3)
    sample = (workdir / "content.jsonl").read_text().splitlines()[-1]
    result["content_record_sample"] = json.loads(sample)
    result["record_bytes"] = len((workdir / "records.jsonl").read_text().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--requests", type=int, default=2000, help="per variant")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    result = asyncio.run(run(args.requests, args.rounds))
    print(f"{'variant':10} {'requests':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for name in ("off", "records", "content"):
        row = result[name]
        print(f"{name:10} {row['requests']:>8} {row['p50_ms']:>8.3f} {row['p99_ms']:>8.3f}")
    print(
        f"added p50: records {result['records_added_p50_ms']:.3f} ms, "
        f"content {result['content_added_p50_ms']:.3f} ms (goal 0.2 ms)"
    )
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
