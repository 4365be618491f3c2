"""Test doubles for the gateway service: a fake engine (vLLM's OpenAI API) and helpers.

The fake engine answers like vLLM: JSON completions with `usage`; SSE streams of
`data: {...}` events ending with `data: [DONE]`, and a final usage chunk (`choices: []`) only
when `stream_options.include_usage` is true. It can be told to fail (status), cut streams
(truncate), hold answers (gate) and it counts calls.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import fakeredis
import yaml
from aiohttp import web

from onprem_llm.gateway.app import Gateway

TENANT = "acme"
CHAT = "/v1/chat/completions"
COMPLETIONS = "/v1/completions"
EMBEDDINGS = "/v1/embeddings"
WORDS = ("Hello", " from", " the", " engine")


def chat_body(**fields: Any) -> dict[str, Any]:
    """A deterministic chat request (temperature 0) unless fields say otherwise."""
    body: dict[str, Any] = {
        "model": "tiny-llama",
        "messages": [{"role": "user", "content": "Say hello"}],
        "temperature": 0,
        "max_tokens": 16,
    }
    body.update(fields)
    return body


def base_config(upstream_url: str) -> dict[str, Any]:
    return {
        "listen": {"host": "127.0.0.1", "port": 8480},
        "metrics_listen": None,
        "upstream_url": upstream_url,
        "upstream_timeout_seconds": 30,
        "tenant_header": "X-Tenant-ID",
        "key_id_header": "X-API-Key-ID",
        "max_body_bytes": 4096,
        "redis": {
            "mode": "standalone",
            "hosts": [{"host": "127.0.0.1", "port": 6379}],
            "key_prefix": "onprem-llm:",
            # Generous: a busy CI machine must not turn a fakeredis call into a fail-open miss.
            "lookup_budget_ms": 2000,
            "write_timeout_ms": 2000,
            "connect_timeout_ms": 200,
            "retry_after_error_seconds": 1,
        },
        "cache": {
            "enabled": True,
            "ttl_seconds": 3600,
            "max_ttl_seconds": 86400,
            "max_entry_bytes": 65536,
            "scope": "tenant",
            # Long, as in production: a busy CI machine must not expire a lease mid-test.
            "lease_ms": 30000,
        },
        "models": {"tiny-llama": {"revision": "rev-1"}},
    }


def merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge overrides into a copy of base (dicts merge, anything else replaces)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


class FakeEngine:
    """An OpenAI-compatible engine in the manner of vLLM, with switches for failures."""

    def __init__(self) -> None:
        self.calls = 0
        self.bodies: list[dict[str, Any]] = []
        self.raw_bodies: list[bytes] = []
        self.headers: list[dict[str, str]] = []
        self.status = 200
        self.truncate = False
        self.error_body = False
        self.gate: asyncio.Event | None = None
        self.stream_pause: asyncio.Event | None = None
        # Answers /v1/embeddings when set (the semantic cache's tests).
        self.embedder: Callable[[dict[str, Any]], Awaitable[web.StreamResponse]] | None = None
        self.url = ""
        self.app = web.Application()
        for path in (CHAT, COMPLETIONS, EMBEDDINGS):
            self.app.router.add_post(path, self.answer)
        self.app.router.add_get("/v1/models", self.models)
        self.app.router.add_route("*", "/echo", self.echo)

    def usage(self, body: dict[str, Any]) -> dict[str, int]:
        prompt = 7 + len(json.dumps(body.get("messages") or body.get("prompt") or "")) % 5
        return {"prompt_tokens": prompt, "completion_tokens": 4, "total_tokens": prompt + 4}

    async def answer(self, request: web.Request) -> web.StreamResponse:
        self.calls += 1
        call = self.calls
        raw = await request.read()
        body = json.loads(raw)
        self.raw_bodies.append(raw)
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        if self.gate is not None:
            await self.gate.wait()
        if self.status != 200 or self.error_body:
            error = {"message": "engine failure", "type": "server_error", "code": self.status}
            return web.json_response({"error": error}, status=self.status)
        if request.path == EMBEDDINGS and self.embedder is not None:
            return await self.embedder(body)
        if request.path == EMBEDDINGS:
            return web.json_response(
                {
                    "object": "list",
                    "data": [{"object": "embedding", "index": 0, "embedding": [0.25, -0.5]}],
                    "model": body["model"],
                    "usage": {"prompt_tokens": 3, "total_tokens": 3},
                }
            )
        if body.get("stream"):
            return await self.stream(request, body, call)
        return web.json_response(
            {
                "id": f"cmpl-{call}",
                "object": "chat.completion",
                "created": 1700000000 + call,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(WORDS)},
                        "finish_reason": "stop",
                    }
                ],
                "usage": self.usage(body),
            }
        )

    async def stream(
        self, request: web.Request, body: dict[str, Any], call: int
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = {"id": f"chatcmpl-{call}", "object": "chat.completion.chunk", "model": body["model"]}
        for index, word in enumerate(WORDS):
            chunk = {**base, "choices": [{"index": 0, "delta": {"content": word}}]}
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
            if index == 0 and self.stream_pause is not None:
                await self.stream_pause.wait()
            if self.truncate and index == 1:
                request.transport.close()
                return response
            await asyncio.sleep(0)
        final = {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
        await response.write(f"data: {json.dumps(final)}\n\n".encode())
        options = body.get("stream_options") or {}
        if options.get("include_usage"):
            usage = {**base, "choices": [], "usage": self.usage(body)}
            await response.write(f"data: {json.dumps(usage)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def models(self, _request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "tiny-llama"}]})

    async def echo(self, request: web.Request) -> web.Response:
        self.calls += 1
        raw = await request.read()
        seen = {
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": {name.lower(): value for name, value in request.headers.items()},
            "body": raw.decode(),
        }
        return web.json_response(
            seen,
            headers={"X-Upstream": "yes", "Keep-Alive": "timeout=5", "Connection": "keep-alive"},
        )


class GatewayUnderTest:
    """A gateway behind an aiohttp test client, with helpers to call it."""

    def __init__(self, gateway: Gateway, client: Any) -> None:
        self.gateway = gateway
        self.client = client
        self.metrics = gateway.metrics

    async def post(
        self,
        path: str,
        body: Any,
        *,
        tenant: str | None = TENANT,
        headers: dict[str, str] | None = None,
    ) -> tuple[Any, bytes]:
        """POST and read the whole answer; returns (response, body bytes)."""
        all_headers = {"Content-Type": "application/json"}
        if tenant is not None:
            all_headers["X-Tenant-ID"] = tenant
        all_headers.update(headers or {})
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = await self.client.post(path, data=data, headers=all_headers)
        payload = await response.read()
        return response, payload

    async def drain(self) -> None:
        await self.gateway.drain()

    def sample(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def granted_commands(*lists: str) -> list[str]:
    """The commands the redis role grants the cache user, from its defaults (lists named)."""
    defaults = yaml.safe_load(
        (Path(__file__).parents[3] / "roles/redis/defaults/main.yml").read_text()
    )
    return [command for name in lists for command in defaults[name]]


async def restricted_cache_client(
    server: fakeredis.FakeServer, commands: list[str]
) -> fakeredis.FakeAsyncRedis:
    """A client signed in as the cache user with only these commands, on onprem-llm:* keys,
    as the redis role makes it."""
    fakeredis.FakeRedis(server=server).acl_setuser(
        "onprem-llm-cache",
        enabled=True,
        passwords=["+pw"],
        keys=["onprem-llm:*"],
        commands=["-@all", *(f"+{command}" for command in commands)],
    )
    client = fakeredis.FakeAsyncRedis(server=server, single_connection_client=True)
    await client.execute_command("AUTH", "onprem-llm-cache", "pw")
    return client
