"""The exact cache through the service: hits, misses, headers, and what is never cached."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from gateway_fakes import CHAT, EMBEDDINGS, TENANT, chat_body

pytestmark = pytest.mark.asyncio


def entry_keys(sync_redis: Any) -> list[str]:
    return sorted(key.decode() for key in sync_redis.scan_iter(match="onprem-llm:cache:*"))


async def test_a_miss_is_stored_and_the_same_request_is_then_a_hit(
    make_gateway: Any, engine: Any, sync_redis: Any
) -> None:
    gw = await make_gateway()
    first, first_body = await gw.post(CHAT, chat_body())
    assert first.status == 200
    assert first.headers["Cache-Status"] == "onprem-llm; fwd=miss; stored"
    await gw.drain()
    second, second_body = await gw.post(CHAT, chat_body())
    assert second.status == 200
    assert second_body == first_body
    assert second.headers["Content-Type"].startswith("application/json")
    assert second.headers["Cache-Status"].startswith("onprem-llm; hit; ttl=")
    assert 3595 <= int(second.headers["Cache-Status"].rsplit("=", 1)[1]) <= 3600
    assert second.headers["Age"] == "0"
    assert engine.calls == 1
    [key] = entry_keys(sync_redis)
    assert key.startswith(f"onprem-llm:cache:{TENANT}:tiny-llama:")
    ttl = sync_redis.ttl(key)
    assert 3590 < ttl <= 3600
    assert json.loads(sync_redis.get(key))["created"] > 0


async def test_age_and_ttl_follow_the_clock_and_hits_never_extend_the_ttl(
    make_gateway: Any, sync_redis: Any
) -> None:
    gw = await make_gateway()
    now = [1_000_000.0]
    gw.gateway._wall = lambda: now[0]
    gw.gateway.store.wall = gw.gateway._wall
    await gw.post(CHAT, chat_body())
    await gw.drain()
    [key] = entry_keys(sync_redis)
    sync_redis.expire(key, 100)  # stands in for time passing in Redis
    now[0] += 125.7
    response, _unused = await gw.post(CHAT, chat_body())
    assert response.headers["Age"] == "125"
    assert response.headers["Cache-Status"] == "onprem-llm; hit; ttl=3474"
    assert sync_redis.ttl(key) <= 100, "a hit must not extend the entry's life"


async def test_excluded_fields_share_an_entry_other_fields_do_not(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    await gw.post(CHAT, chat_body(user="alice"))
    await gw.drain()
    response, _unused = await gw.post(CHAT, chat_body(user="bob", metadata={"x": 1}))
    assert "hit" in response.headers["Cache-Status"]
    response, _unused = await gw.post(CHAT, chat_body(max_tokens=17))
    assert response.headers["Cache-Status"].startswith("onprem-llm; fwd=miss")
    assert engine.calls == 2


async def test_temperature_above_zero_is_never_cached(make_gateway: Any, engine: Any) -> None:
    gw = await make_gateway()
    for _unused in range(2):
        response, _unused = await gw.post(CHAT, chat_body(temperature=0.7))
        assert response.headers["Cache-Status"] == (
            "onprem-llm; fwd=bypass; detail=not-deterministic"
        )
        await gw.drain()
    assert engine.calls == 2
    response, _unused = await gw.post(CHAT, chat_body(temperature=0.7, seed=11))
    assert response.headers["Cache-Status"].startswith("onprem-llm; fwd=miss")


async def test_no_store_is_neither_looked_up_nor_stored(
    make_gateway: Any, engine: Any, sync_redis: Any
) -> None:
    gw = await make_gateway()
    await gw.post(CHAT, chat_body())
    await gw.drain()
    response, _unused = await gw.post(CHAT, chat_body(), headers={"Cache-Control": "no-store"})
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=bypass; detail=no-store"
    assert engine.calls == 2
    sync_redis.flushall()
    await gw.post(CHAT, chat_body(), headers={"Cache-Control": "No-Store"})
    await gw.drain()
    assert entry_keys(sync_redis) == []


async def test_no_cache_forwards_and_refreshes_the_entry(make_gateway: Any, engine: Any) -> None:
    gw = await make_gateway()
    await gw.post(CHAT, chat_body())
    await gw.drain()
    response, body = await gw.post(CHAT, chat_body(), headers={"Cache-Control": "no-cache"})
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=request; stored"
    assert json.loads(body)["id"] == "cmpl-2"
    await gw.drain()
    _unused, body = await gw.post(CHAT, chat_body())
    assert json.loads(body)["id"] == "cmpl-2"
    assert engine.calls == 2


async def test_max_age_accepts_young_entries_and_never_extends_old_ones(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    now = [5_000.0]
    gw.gateway._wall = lambda: now[0]
    gw.gateway.store.wall = gw.gateway._wall
    await gw.post(CHAT, chat_body())
    await gw.drain()
    now[0] += 30
    response, _unused = await gw.post(CHAT, chat_body(), headers={"Cache-Control": "max-age=60"})
    assert response.headers["Cache-Status"].startswith("onprem-llm; hit")
    response, _unused = await gw.post(CHAT, chat_body(), headers={"Cache-Control": "max-age=10"})
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=stale; stored"
    assert engine.calls == 2
    await gw.drain()
    response, _unused = await gw.post(CHAT, chat_body(), headers={"cache-control": "max-age=99999"})
    assert response.headers["Age"] == "0", "the refreshed entry is served"
    assert response.headers["Cache-Status"].endswith("ttl=3600")


async def test_two_tenants_never_share_an_entry(make_gateway: Any, engine: Any) -> None:
    gw = await make_gateway()
    _unused, first = await gw.post(CHAT, chat_body(), tenant="acme")
    await gw.drain()
    response, second = await gw.post(CHAT, chat_body(), tenant="globex")
    assert response.headers["Cache-Status"].startswith("onprem-llm; fwd=miss")
    assert json.loads(first)["id"] != json.loads(second)["id"]
    assert engine.calls == 2


async def test_site_scope_shares_entries_between_tenants(make_gateway: Any, engine: Any) -> None:
    gw = await make_gateway(cache={"scope": "site"})
    await gw.post(CHAT, chat_body(), tenant="acme")
    await gw.drain()
    response, _unused = await gw.post(CHAT, chat_body(), tenant="globex")
    assert response.headers["Cache-Status"].startswith("onprem-llm; hit")
    assert engine.calls == 1


async def test_a_new_model_revision_misses(
    make_gateway: Any, engine: Any, redis_server: Any
) -> None:
    gw = await make_gateway()
    await gw.post(CHAT, chat_body())
    await gw.drain()
    upgraded = await make_gateway(models={"tiny-llama": {"revision": "rev-2"}})
    response, _unused = await upgraded.post(CHAT, chat_body())
    assert response.headers["Cache-Status"].startswith("onprem-llm; fwd=miss")
    assert engine.calls == 2


async def test_errors_are_never_stored(make_gateway: Any, engine: Any, sync_redis: Any) -> None:
    gw = await make_gateway()
    engine.status = 500
    for _unused in range(2):
        response, body = await gw.post(CHAT, chat_body())
        assert response.status == 500
        assert json.loads(body)["error"]["message"] == "engine failure"
        assert response.headers["Cache-Status"] == "onprem-llm; fwd=miss"
        await gw.drain()
    assert engine.calls == 2
    assert entry_keys(sync_redis) == []


async def test_a_200_with_an_error_body_or_too_large_is_not_stored(
    make_gateway: Any, engine: Any, sync_redis: Any
) -> None:
    gw = await make_gateway(cache={"max_entry_bytes": 100})
    response, _unused = await gw.post(CHAT, chat_body())
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=miss"
    engine.error_body = True
    response, body = await gw.post(CHAT, chat_body(max_tokens=1))
    assert response.status == 200 and "error" in json.loads(body)
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=miss"
    await gw.drain()
    assert entry_keys(sync_redis) == []


async def test_embeddings_are_cached_whatever_the_temperature(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    body = {"model": "tiny-llama", "input": "a sentence", "temperature": 1}
    await gw.post(EMBEDDINGS, body)
    await gw.drain()
    response, payload = await gw.post(EMBEDDINGS, body)
    assert response.headers["Cache-Status"].startswith("onprem-llm; hit")
    assert json.loads(payload)["data"][0]["embedding"] == [0.25, -0.5]
    assert engine.calls == 1


async def test_a_corrupted_entry_is_deleted_counted_and_not_served(
    make_gateway: Any, engine: Any, sync_redis: Any
) -> None:
    gw = await make_gateway()
    await gw.post(CHAT, chat_body())
    await gw.drain()
    [key] = entry_keys(sync_redis)
    for garbage in (b"{not json", json.dumps({"format": 99}).encode(), b'{"format":1}'):
        sync_redis.set(key, garbage)
        response, body = await gw.post(CHAT, chat_body(), headers={"Cache-Control": ""})
        assert response.status == 200
        assert response.headers["Cache-Status"].startswith("onprem-llm; fwd=miss")
        assert b"not json" not in body
        await gw.drain()
    assert gw.sample("onprem_llm_gateway_cache_errors_total", operation="decode") == 3
    assert engine.calls == 4
    assert json.loads(sync_redis.get(key))["format"] == 1, "replaced by a good entry"


async def test_an_entry_of_another_key_is_refused(
    make_gateway: Any, engine: Any, sync_redis: Any
) -> None:
    gw = await make_gateway()
    await gw.post(CHAT, chat_body())
    await gw.post(CHAT, chat_body(max_tokens=3))
    await gw.drain()
    first, second = entry_keys(sync_redis)
    sync_redis.set(first, sync_redis.get(second))
    response, _unused = await gw.post(CHAT, chat_body())
    assert "fwd=miss" in response.headers["Cache-Status"]
    assert gw.sample("onprem_llm_gateway_cache_errors_total", operation="decode") == 1


async def test_the_cache_can_be_disabled(make_gateway: Any, engine: Any) -> None:
    gw = await make_gateway(cache={"enabled": False})
    for _unused in range(2):
        response, _unused = await gw.post(CHAT, chat_body())
        assert response.headers["Cache-Status"] == "onprem-llm; fwd=bypass; detail=disabled"
    assert engine.calls == 2


async def test_cache_salt_is_the_tenants_and_forwarded(make_gateway: Any, engine: Any) -> None:
    gw = await make_gateway(cache={"cache_salt": True})
    await gw.post(CHAT, chat_body(cache_salt="chosen-by-client"))
    salt = hashlib.sha256(TENANT.encode()).hexdigest()
    assert engine.bodies[-1]["cache_salt"] == salt
    await gw.drain()
    response, _unused = await gw.post(CHAT, chat_body())
    assert response.headers["Cache-Status"].startswith("onprem-llm; hit")


async def test_unchanged_bodies_are_forwarded_byte_for_byte(make_gateway: Any, engine: Any) -> None:
    gw = await make_gateway()
    raw = (
        b'{ "temperature":0,  "model" : "tiny-llama",'
        b' "messages":[{"role":"user","content":"\\u00e9"}]}'
    )
    await gw.post(CHAT, raw)
    assert engine.raw_bodies[-1] == raw
