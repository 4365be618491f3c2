"""Token accounting and the metrics listener: counters equal the usage clients got."""

from __future__ import annotations

import json
from typing import Any

import pytest
from gateway_fakes import CHAT, EMBEDDINGS, chat_body

from onprem_llm.gateway.app import metrics_app

pytestmark = pytest.mark.asyncio

TOKENS = "onprem_llm_gateway_tokens_total"
REQUESTS = "onprem_llm_gateway_requests_total"


def usage_seen(payload: bytes) -> dict[str, int]:
    """The usage in an answer as the client got it (JSON body or the stream's usage chunk)."""
    if payload.startswith(b"data: "):
        for event in payload.split(b"\n\n"):
            if event.startswith(b"data: {"):
                value = json.loads(event[6:])
                if value.get("choices") == [] and value.get("usage"):
                    return value["usage"]
        raise AssertionError("no usage chunk")
    return json.loads(payload)["usage"]


async def test_token_counters_equal_the_usage_clients_saw(make_gateway: Any, engine: Any) -> None:
    gw = await make_gateway()
    seen = {"engine": {"prompt": 0, "completion": 0}, "cache": {"prompt": 0, "completion": 0}}
    requests = [
        chat_body(),
        chat_body(),  # hit
        chat_body(temperature=0.9),  # bypass
        chat_body(stream=True, stream_options={"include_usage": True}),
        chat_body(stream=True, stream_options={"include_usage": True}),  # hit
        chat_body(messages=[{"role": "user", "content": "longer question here"}]),
    ]
    for body in requests:
        response, payload = await gw.post(CHAT, body)
        await gw.drain()
        source = "cache" if "hit" in response.headers["Cache-Status"] else "engine"
        usage = usage_seen(payload)
        seen[source]["prompt"] += usage["prompt_tokens"]
        seen[source]["completion"] += usage["completion_tokens"]
    for source, kinds in seen.items():
        for kind, total in kinds.items():
            labels = {"tenant": "acme", "model": "tiny-llama", "type": kind, "source": source}
            assert gw.sample(TOKENS, **labels) == total, (source, kind)
    assert seen["cache"]["completion"] == 8
    for outcome, count in (("hit", 2), ("miss", 3), ("bypass", 1)):
        labels = {"tenant": "acme", "model": "tiny-llama", "cache": outcome}
        assert gw.sample(REQUESTS, **labels) == count, outcome
    assert gw.sample("onprem_llm_gateway_upstream_responses_total", status="200") == 4
    assert gw.sample("onprem_llm_gateway_request_duration_seconds_count", cache="hit") == 2
    assert gw.sample("onprem_llm_gateway_cache_lookup_duration_seconds_count") == 5


async def test_streams_are_accounted_even_when_the_client_did_not_ask_for_usage(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    await gw.post(CHAT, chat_body(stream=True))
    labels = {"tenant": "acme", "model": "tiny-llama", "source": "engine"}
    assert gw.sample(TOKENS, type="completion", **labels) == 4


async def test_embeddings_count_prompt_tokens(make_gateway: Any, engine: Any) -> None:
    gw = await make_gateway()
    await gw.post(EMBEDDINGS, {"model": "tiny-llama", "input": "x"})
    labels = {"tenant": "acme", "model": "tiny-llama", "source": "engine"}
    assert gw.sample(TOKENS, type="prompt", **labels) == 3
    assert gw.sample(TOKENS, type="completion", **labels) == 0


async def test_unknown_models_refused_by_the_engine_do_not_create_labels(
    make_gateway: Any, engine: Any
) -> None:
    gw = await make_gateway()
    engine.status = 404
    for name in ("random-1", "random-2"):
        await gw.post(CHAT, chat_body(model=name))
    labels = {"tenant": "acme", "model": "other", "cache": "miss"}
    assert gw.sample(REQUESTS, **labels) == 2
    engine.status = 200
    await gw.post(CHAT, chat_body(model="served-but-not-listed"))
    labels = {"tenant": "acme", "model": "served-but-not-listed", "cache": "miss"}
    assert gw.sample(REQUESTS, **labels) == 1


async def test_metrics_and_health_are_served(
    make_gateway: Any, engine: Any, aiohttp_client: Any, redis_server: Any
) -> None:
    gw = await make_gateway()
    await gw.post(CHAT, chat_body())
    client = await aiohttp_client(metrics_app(gw.gateway))
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    text = await response.text()
    assert 'onprem_llm_gateway_requests_total{cache="miss",model="tiny-llama",tenant="acme"}' in (
        text
    )
    assert "onprem_llm_gateway_cache_lookup_duration_seconds_bucket" in text
    response = await client.get("/health")
    assert response.status == 200
    assert (await response.json())["redis"]["state"] == "up"
    redis_server.connected = False
    response = await client.get("/health")
    assert response.status == 200, "Redis never makes the gateway unhealthy"
    assert (await response.json())["redis"]["state"] == "down"


async def test_routes_are_counted_per_tenant_and_model(make_gateway: Any, engine: Any) -> None:
    gw = await make_gateway()
    on_prem = {"X-Onprem-Route": "on-prem"}
    await gw.post(CHAT, chat_body(), headers=on_prem)
    await gw.drain()
    await gw.post(CHAT, chat_body(), headers=on_prem)  # hit
    await gw.post(CHAT, chat_body(temperature=0.7), headers={"X-Onprem-Route": "cloud:azure-eu"})
    # A value HAProxy never sets is not a label value.
    await gw.post(CHAT, chat_body(temperature=0.8), headers={"X-Onprem-Route": "cloud:A B"})
    routes = "onprem_llm_gateway_routed_requests_total"
    labels = {"tenant": "acme", "model": "tiny-llama"}
    assert gw.sample(routes, route="on-prem", **labels) == 1
    assert gw.sample(routes, route="cache", **labels) == 1
    assert gw.sample(routes, route="cloud:azure-eu", **labels) == 1
    assert gw.sample(routes, route="unknown", **labels) == 1
