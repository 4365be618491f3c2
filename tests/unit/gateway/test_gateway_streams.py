"""Streams: passed through as they come, stored only complete, replayed byte for byte, with
the usage chunk shown only to clients that asked for it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from gateway_fakes import CHAT, TENANT, chat_body

pytestmark = pytest.mark.asyncio

USAGE = {"include_usage": True}


def events(payload: bytes) -> list[bytes]:
    return [part + b"\n\n" for part in payload.split(b"\n\n") if part]


def usage_chunks(payload: bytes) -> list[dict[str, Any]]:
    return [
        value
        for event in events(payload)
        if event != b"data: [DONE]\n\n"
        and (value := json.loads(event[6:]))["choices"] == []
        and "usage" in value
    ]


async def test_a_stream_is_passed_through_and_replayed_identically(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    body = chat_body(stream=True, stream_options=USAGE)
    first, original = await gw.post(CHAT, body)
    assert first.status == 200
    assert first.headers["Content-Type"].startswith("text/event-stream")
    assert first.headers["Cache-Status"] == "onprem-llm; fwd=miss"
    assert original.endswith(b"data: [DONE]\n\n")
    assert len(usage_chunks(original)) == 1
    assert engine.raw_bodies[-1] == json.dumps(body).encode(), "forwarded unchanged"
    await gw.drain()
    second, replay = await gw.post(CHAT, body)
    assert second.headers["Cache-Status"].startswith("onprem-llm; hit; ttl=")
    assert second.headers["Content-Type"].startswith("text/event-stream")
    assert replay == original
    assert engine.calls == 1


async def test_usage_is_asked_for_upstream_and_stripped_for_clients_that_did_not(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    _unused, payload = await gw.post(CHAT, chat_body(stream=True))
    assert engine.bodies[-1]["stream_options"] == {"include_usage": True}
    assert usage_chunks(payload) == []
    assert payload.endswith(b"data: [DONE]\n\n")
    # 4 words, the finish chunk, [DONE]
    assert len(events(payload)) == 6
    await gw.drain()
    _unused, replay = await gw.post(CHAT, chat_body(stream=True))
    assert replay == payload
    _unused, with_usage = await gw.post(CHAT, chat_body(stream=True, stream_options=USAGE))
    [usage] = usage_chunks(with_usage)
    assert usage["usage"]["completion_tokens"] == 4
    assert engine.calls == 1


async def test_other_stream_options_are_kept_when_usage_is_added(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    await gw.post(CHAT, chat_body(stream=True, stream_options={"continuous_usage_stats": False}))
    assert engine.bodies[-1]["stream_options"] == {
        "continuous_usage_stats": False,
        "include_usage": True,
    }


async def test_events_reach_the_client_before_the_stream_ends(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    engine.stream_pause = asyncio.Event()
    response = await gw.client.post(
        CHAT,
        data=json.dumps(chat_body(stream=True)),
        headers={"X-Tenant-ID": TENANT, "Content-Type": "application/json"},
    )
    first = await asyncio.wait_for(response.content.readuntil(b"\n\n"), timeout=5)
    assert b'"Hello"' in first
    engine.stream_pause.set()
    rest = await response.read()
    assert rest.endswith(b"data: [DONE]\n\n")


async def test_a_cut_stream_is_never_stored(
    make_gateway: Any, engine: Any, sync_redis: Any
) -> None:
    gw = await make_gateway()
    engine.truncate = True
    for _unused in range(2):
        response = await gw.client.post(
            CHAT,
            data=json.dumps(chat_body(stream=True)),
            headers={"X-Tenant-ID": TENANT},
        )
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
        await gw.drain()
    assert list(sync_redis.scan_iter(match="onprem-llm:cache:*")) == []
    assert engine.calls == 2
    engine.truncate = False
    response, payload = await gw.post(CHAT, chat_body(stream=True))
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=miss"
    assert payload.endswith(b"data: [DONE]\n\n")


async def test_a_stream_larger_than_max_entry_bytes_is_passed_but_not_stored(
    make_gateway: Any, engine: Any, sync_redis: Any
) -> None:
    gw = await make_gateway(cache={"max_entry_bytes": 200})
    _unused, payload = await gw.post(CHAT, chat_body(stream=True))
    assert payload.endswith(b"data: [DONE]\n\n")
    await gw.drain()
    assert list(sync_redis.scan_iter(match="onprem-llm:cache:*")) == []


async def test_stream_and_non_stream_answers_are_separate_entries(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    await gw.post(CHAT, chat_body())
    await gw.drain()
    response, payload = await gw.post(CHAT, chat_body(stream=True))
    assert response.headers["Cache-Status"].startswith("onprem-llm; fwd=miss")
    assert payload.startswith(b"data: ")
    assert engine.calls == 2
