"""Fail-open: whatever Redis does, the request is answered by the engine; the error is
counted, shown only as Cache-Status detail, and Redis is skipped for a while after it."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from gateway_fakes import CHAT, chat_body
from redis.exceptions import ResponseError

pytestmark = pytest.mark.asyncio

UNAVAILABLE = "onprem-llm; fwd=miss; detail=cache-unavailable"


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SlowRedis:
    """Answers every command, but later than any lookup budget."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.finished = 0

    async def _slow(self, value: Any = None) -> Any:
        await asyncio.sleep(self.delay)
        self.finished += 1
        return value

    async def get(self, _name: str) -> Any:
        return await self._slow()

    async def set(self, *_args: Any, **_kwargs: Any) -> Any:
        return await self._slow(True)

    async def delete(self, *_names: str) -> Any:
        return await self._slow(1)

    async def exists(self, *_names: str) -> Any:
        return await self._slow(0)

    async def ping(self) -> Any:
        return await self._slow(True)


class RefusingRedis(SlowRedis):
    """The ACL refuses everything."""

    async def _slow(self, value: Any = None) -> Any:
        raise ResponseError("NOPERM this user has no permissions to run this command")


class GarbageRedis(SlowRedis):
    """GET answers something that is no entry at all."""

    async def _slow(self, value: Any = None) -> Any:
        return 12345 if value is None else value


async def test_redis_down_still_answers_and_counts_an_error(make_gateway: Any, engine: Any) -> None:
    client = redis_asyncio.Redis(host="127.0.0.1", port=closed_port(), socket_connect_timeout=0.2)
    gw = await make_gateway(client=client)
    response, body = await gw.post(CHAT, chat_body())
    assert response.status == 200
    assert response.headers["Cache-Status"] == UNAVAILABLE
    assert b"cmpl-1" in body
    assert gw.sample("onprem_llm_gateway_cache_errors_total", operation="lookup") == 1
    labels = {"tenant": "acme", "model": "tiny-llama", "cache": "error"}
    assert gw.sample("onprem_llm_gateway_requests_total", **labels) == 1
    # The breaker is open: the next request does not try Redis again.
    response, _unused = await gw.post(CHAT, chat_body())
    assert response.headers["Cache-Status"] == UNAVAILABLE
    assert gw.sample("onprem_llm_gateway_cache_errors_total", operation="lookup") == 1
    assert engine.calls == 2
    await client.aclose() if hasattr(client, "aclose") else await client.close()


async def test_a_fake_redis_that_lost_its_connection(
    make_gateway: Any, engine: Any, redis_server: Any
) -> None:
    gw = await make_gateway()
    redis_server.connected = False
    response, _unused = await gw.post(CHAT, chat_body())
    assert response.status == 200
    assert response.headers["Cache-Status"] == UNAVAILABLE


async def test_a_slow_redis_is_abandoned_within_the_budget(make_gateway: Any, engine: Any) -> None:
    slow = SlowRedis(delay=0.3)
    gw = await make_gateway(client=slow, redis={"lookup_budget_ms": 20})
    started = asyncio.get_running_loop().time()
    response, _unused = await gw.post(CHAT, chat_body())
    elapsed = asyncio.get_running_loop().time() - started
    assert response.status == 200
    assert response.headers["Cache-Status"] == UNAVAILABLE
    assert elapsed < 0.25, "the lookup must not wait for the slow Redis"
    assert gw.sample("onprem_llm_gateway_cache_errors_total", operation="lookup") == 1
    await gw.drain()
    assert slow.finished == 1, "the abandoned command finished instead of being cancelled"


async def test_the_breaker_closes_after_retry_after_error_seconds(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway(client=RefusingRedis(0))
    now = [100.0]
    gw.gateway.store._clock = lambda: now[0]
    response, _unused = await gw.post(CHAT, chat_body())
    assert response.headers["Cache-Status"] == UNAVAILABLE
    now[0] += 0.5
    await gw.post(CHAT, chat_body())
    assert gw.sample("onprem_llm_gateway_cache_errors_total", operation="lookup") == 1
    now[0] += 0.6
    await gw.post(CHAT, chat_body())
    assert gw.sample("onprem_llm_gateway_cache_errors_total", operation="lookup") == 2
    assert engine.calls == 3


async def test_garbage_from_redis_is_a_miss(make_gateway: Any, engine: Any) -> None:
    gw = await make_gateway(client=GarbageRedis(0))
    response, _unused = await gw.post(CHAT, chat_body())
    assert response.status == 200
    assert response.headers["Cache-Status"].startswith("onprem-llm; fwd=miss")
    assert gw.sample("onprem_llm_gateway_cache_errors_total", operation="decode") == 1


async def test_failed_stores_are_counted_and_never_reach_the_client(
    make_gateway: Any, engine: Any, redis_server: Any
) -> None:
    gw = await make_gateway(cache={"lease_ms": 0})
    original = gw.gateway.store.client.set

    async def refuse(*_args: Any, **_kwargs: Any) -> Any:
        raise ResponseError("NOPERM")

    gw.gateway.store.client.set = refuse
    response, _unused = await gw.post(CHAT, chat_body())
    assert response.status == 200
    await gw.drain()
    assert gw.sample("onprem_llm_gateway_cache_errors_total", operation="store") == 1
    gw.gateway.store.client.set = original
