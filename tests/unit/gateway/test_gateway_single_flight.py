"""Single-flight: identical concurrent misses make one engine call, in one gateway and across
gateways sharing Redis (a lease)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import fakeredis
import pytest
from gateway_fakes import CHAT, chat_body

pytestmark = pytest.mark.asyncio


async def wait_for_calls(engine: Any, calls: int) -> None:
    for _unused in range(200):
        if engine.calls >= calls:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the engine got {engine.calls} calls, expected {calls}")


async def test_concurrent_identical_misses_make_one_upstream_call(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    engine.gate = asyncio.Event()
    requests = [asyncio.ensure_future(gw.post(CHAT, chat_body())) for _unused in range(6)]
    await wait_for_calls(engine, 1)
    await asyncio.sleep(0.05)
    engine.gate.set()
    answers = await asyncio.gather(*requests)
    assert engine.calls == 1
    bodies = {body for _unused, body in answers}
    assert len(bodies) == 1
    statuses = sorted(response.headers["Cache-Status"] for response, _unused in answers)
    assert statuses[0] == "onprem-llm; fwd=miss; stored"
    assert all(status.startswith("onprem-llm; hit; collapsed; ttl=") for status in statuses[1:])


async def test_followers_forward_themselves_when_the_leader_stored_nothing(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    engine.gate = asyncio.Event()
    engine.status = 500
    requests = [asyncio.ensure_future(gw.post(CHAT, chat_body())) for _unused in range(3)]
    await wait_for_calls(engine, 1)
    await asyncio.sleep(0.05)
    engine.gate.set()
    answers = await asyncio.gather(*requests)
    assert [response.status for response, _unused in answers] == [500, 500, 500]
    assert engine.calls == 3


async def test_concurrent_streams_collapse_and_replay_the_complete_stream(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    engine.gate = asyncio.Event()
    body = chat_body(stream=True)
    requests = [asyncio.ensure_future(gw.post(CHAT, body)) for _unused in range(3)]
    await wait_for_calls(engine, 1)
    await asyncio.sleep(0.05)
    engine.gate.set()
    answers = await asyncio.gather(*requests)
    assert engine.calls == 1
    assert len({payload for _unused, payload in answers}) == 1


async def test_a_lease_makes_another_gateway_wait_for_the_entry(
    make_gateway: Any, engine: Any
) -> None:
    first = await make_gateway()
    second = await make_gateway()
    engine.gate = asyncio.Event()
    leader = asyncio.ensure_future(first.post(CHAT, chat_body()))
    await wait_for_calls(engine, 1)
    follower = asyncio.ensure_future(second.post(CHAT, chat_body()))
    await asyncio.sleep(0.1)
    assert not follower.done(), "the second gateway waits while the lease is held"
    engine.gate.set()
    (lead_response, lead_body), (follow_response, follow_body) = await asyncio.gather(
        leader, follower
    )
    assert engine.calls == 1
    assert follow_body == lead_body
    assert lead_response.headers["Cache-Status"] == "onprem-llm; fwd=miss; stored"
    assert follow_response.headers["Cache-Status"].startswith("onprem-llm; hit; collapsed")
    await first.drain()
    await second.drain()


class StaleEntryRead:
    """A Redis client whose next missing-entry read, once armed, answers only after the
    holder has stored its entry and dropped its lease: the race a poll must survive."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.armed = False
        self.parked = asyncio.Event()
        self.release = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def get(self, name: Any) -> Any:
        value = await self.inner.get(name)
        if self.armed and value is None and ":cache:" in str(name):
            self.armed = False
            self.parked.set()
            await self.release.wait()
        return value


async def test_a_waiter_that_reads_the_entry_before_the_lease_drop_still_gets_the_entry(
    make_gateway: Any, engine: Any, redis_server: Any
) -> None:
    first = await make_gateway()
    stale = StaleEntryRead(fakeredis.FakeAsyncRedis(server=redis_server))
    second = await make_gateway(client=stale)
    engine.gate = asyncio.Event()
    leader = asyncio.ensure_future(first.post(CHAT, chat_body()))
    await wait_for_calls(engine, 1)
    follower = asyncio.ensure_future(second.post(CHAT, chat_body()))
    await asyncio.sleep(0.1)
    stale.armed = True
    await asyncio.wait_for(stale.parked.wait(), 5)
    engine.gate.set()
    await leader
    await first.drain()
    stale.release.set()
    follow_response, _follow_body = await follower
    assert engine.calls == 1
    assert follow_response.headers["Cache-Status"].startswith("onprem-llm; hit; collapsed")
    await second.drain()


async def test_the_lease_is_released_after_the_store(
    make_gateway: Any, engine: Any, sync_redis: Any
) -> None:
    gw = await make_gateway()
    await gw.post(CHAT, chat_body())
    await gw.drain()
    assert list(sync_redis.scan_iter(match="onprem-llm:lease:*")) == []
    assert len(list(sync_redis.scan_iter(match="onprem-llm:cache:*"))) == 1


async def test_a_released_lease_without_an_entry_lets_the_waiter_forward(
    make_gateway: Any, engine: Any
) -> None:
    first = await make_gateway()
    second = await make_gateway()
    engine.gate = asyncio.Event()
    engine.status = 500
    leader = asyncio.ensure_future(first.post(CHAT, chat_body()))
    await wait_for_calls(engine, 1)
    follower = asyncio.ensure_future(second.post(CHAT, chat_body()))
    await asyncio.sleep(0.1)
    engine.gate.set()
    answers = await asyncio.gather(leader, follower)
    assert [response.status for response, _unused in answers] == [500, 500]
    assert engine.calls == 2


async def test_a_lease_held_too_long_is_waited_for_at_most_lease_ms(
    make_gateway: Any, engine: Any, sync_redis: Any
) -> None:
    gw = await make_gateway(cache={"lease_ms": 300})
    await gw.post(CHAT, chat_body(max_tokens=1))  # learn the key names
    await gw.drain()
    [entry] = list(sync_redis.scan_iter(match="onprem-llm:cache:*"))
    sync_redis.delete(entry)
    lease = entry.replace(b":cache:", b":lease:")
    sync_redis.set(lease, b"someone-else", px=10_000)
    started = asyncio.get_running_loop().time()
    response, body = await gw.post(CHAT, chat_body(max_tokens=1))
    waited = asyncio.get_running_loop().time() - started
    assert response.status == 200 and json.loads(body)["id"] == "cmpl-2"
    assert 0.25 <= waited < 2
    await gw.drain()
    assert sync_redis.get(lease) == b"someone-else", "another gateway's lease is not deleted"


async def test_an_old_lease_is_released_only_if_it_is_still_ours(
    make_gateway: Any, engine: Any, sync_redis: Any
) -> None:
    gw = await make_gateway(cache={"lease_ms": 200})
    engine.gate = asyncio.Event()
    request = asyncio.ensure_future(gw.post(CHAT, chat_body()))
    await wait_for_calls(engine, 1)
    [lease] = list(sync_redis.scan_iter(match="onprem-llm:lease:*"))
    await asyncio.sleep(0.25)  # our lease expired; another gateway takes one
    assert not sync_redis.exists(lease)
    sync_redis.set(lease, b"another-gateway", px=10_000)
    engine.gate.set()
    response, _unused = await request
    await gw.drain()
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=miss; stored"
    assert sync_redis.get(lease) == b"another-gateway"
    assert len(list(sync_redis.scan_iter(match="onprem-llm:cache:*"))) == 1


async def test_an_old_lease_still_ours_is_released(
    make_gateway: Any, engine: Any, sync_redis: Any
) -> None:
    gw = await make_gateway(cache={"lease_ms": 400})
    engine.gate = asyncio.Event()
    request = asyncio.ensure_future(gw.post(CHAT, chat_body()))
    await wait_for_calls(engine, 1)
    await asyncio.sleep(0.25)  # past half the lease: released by GET, compare, DEL
    engine.gate.set()
    await request
    await gw.drain()
    assert list(sync_redis.scan_iter(match="onprem-llm:lease:*")) == []


async def test_followers_are_answered_when_the_leaders_client_goes_away(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    engine.gate = asyncio.Event()
    leader = asyncio.ensure_future(gw.post(CHAT, chat_body()))
    await wait_for_calls(engine, 1)
    follower = asyncio.ensure_future(gw.post(CHAT, chat_body()))
    await asyncio.sleep(0.05)
    leader.cancel()
    await asyncio.sleep(0.05)
    engine.gate.set()
    response, body = await asyncio.wait_for(follower, timeout=5)
    assert response.status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "Hello from the engine"
