"""The semantic cache through the service: hits by meaning, and every way it must miss.

The embedding model here is a stand-in: a bag of words hashed into 64 dimensions that ignores
case, digits and punctuation, so reworded questions score 1.0 and questions that differ only
in a number score 1.0 too (what makes the guard necessary with real models). The labelled set
with the real all-MiniLM-L6-v2 is measured by tests/bench/bench_semantic_cache.py.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
from typing import Any

import pytest
from aiohttp import web
from gateway_fakes import (
    CHAT,
    COMPLETIONS,
    TENANT,
    chat_body,
    granted_commands,
    restricted_cache_client,
)

from onprem_llm.gateway.config import ConfigError, parse_config
from onprem_llm.gateway.semantic import evict, guard_terms, question_of

pytestmark = pytest.mark.asyncio

DIMENSIONS = 64
SEMANTIC = {
    "embedding_model": "minilm",
    "embedding_backend": "model_minilm",
    "dimensions": DIMENSIONS,
    "timeout_ms": 2000,
    "tenants": {TENANT: {"models": ["tiny-llama"]}},
}
LOOKUPS = "onprem_llm_gateway_semantic_lookups_total"


def bag_of_words(text: str) -> list[float]:
    vector = [0.0] * DIMENSIONS
    for word in re.findall(r"[a-z]+", text.lower()):
        vector[int(hashlib.sha256(word.encode()).hexdigest(), 16) % DIMENSIONS] += 1.0
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return [x / norm for x in vector]


class Embedder:
    """The stand-in embedding model, with switches for the ways a real one fails."""

    def __init__(self) -> None:
        self.inputs: list[dict[str, Any]] = []
        self.delay = 0.0
        self.answer: Any = None

    async def __call__(self, body: dict[str, Any]) -> web.StreamResponse:
        self.inputs.append(body)
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.answer is not None:
            if isinstance(self.answer, bytes):
                return web.Response(body=self.answer, content_type="application/json")
            return web.json_response(self.answer)
        embedding = bag_of_words(body["input"])
        return web.json_response({"object": "list", "data": [{"embedding": embedding}]})


@pytest.fixture
def embedder(engine: Any) -> Embedder:
    engine.embedder = Embedder()
    return engine.embedder


def ask(text: str, **fields: Any) -> dict[str, Any]:
    return chat_body(messages=[{"role": "user", "content": text}], **fields)


def chats(engine: Any) -> list[dict[str, Any]]:
    return [body for body in engine.bodies if "messages" in body or "prompt" in body]


async def store_then_ask(gw: Any, stored: dict[str, Any], asked: dict[str, Any], **kw: Any) -> Any:
    first, _body = await gw.post(CHAT, stored)
    assert first.status == 200
    assert "stored" in first.headers["Cache-Status"]
    await gw.drain()
    response, body = await gw.post(CHAT, asked, **kw)
    await gw.drain()
    return response, body


async def test_a_reworded_question_is_answered_from_the_cache(
    make_gateway: Any, engine: Any, embedder: Embedder, sync_redis: Any
) -> None:
    gw = await make_gateway(semantic=SEMANTIC)
    stored = ask("How do I reset my password?")
    first, first_body = await gw.post(CHAT, stored)
    assert first.headers["Cache-Status"] == "onprem-llm; fwd=miss; detail=semantic-empty; stored"
    await gw.drain()
    second, second_body = await gw.post(
        CHAT, ask("my password: how do I reset"), headers={"X-Onprem-Request-ID": "req-42"}
    )
    await gw.drain()
    assert second.status == 200
    assert second.headers["Cache-Status"].endswith("; detail=semantic")
    assert second_body == first_body
    assert second.headers["Cache-Status"].startswith("onprem-llm; hit; ttl=")
    assert second.headers["Cache-Status"].endswith("; detail=semantic")
    assert float(second.headers["X-Cache-Similarity"]) >= 0.95
    assert len(chats(engine)) == 1
    # The embedding call goes to the site's embedding model through HAProxy's loopback frontend.
    call = embedder.inputs[-1]
    assert call["model"] == "minilm"
    assert call["truncate_prompt_tokens"] == 256
    assert engine.headers[-1]["X-Onprem-Backend"] == "model_minilm"
    assert gw.sample(LOOKUPS, tenant=TENANT, model="tiny-llama", result="hit") == 1
    assert gw.sample(LOOKUPS, tenant=TENANT, model="tiny-llama", result="empty") == 1
    # One set per tenant and model; the question itself is nowhere in Redis.
    [set_key] = [k.decode() for k in sync_redis.scan_iter(match="onprem-llm:semantic:*")]
    assert set_key.startswith(f"onprem-llm:semantic:{TENANT}:tiny-llama:minilm:{DIMENSIONS}:")
    strings = [*sync_redis.scan_iter(match="onprem-llm:cache:*")]
    strings += [*sync_redis.scan_iter(match="onprem-llm:semantic-hit:*")]
    assert len(strings) == 2
    for key in strings:
        assert b"password" not in sync_redis.get(key)
    attributes = sync_redis.execute_command("VGETATTR", set_key, strings[0].decode().split(":")[-1])
    assert b"password" not in attributes


async def test_a_different_number_is_a_miss_by_the_guard(
    make_gateway: Any, engine: Any, embedder: Embedder
) -> None:
    gw = await make_gateway(semantic=SEMANTIC)
    response, _body = await store_then_ask(
        gw, ask("Which service listens on port 8080?"), ask("Which service listens on port 8081?")
    )
    assert response.headers["Cache-Status"].startswith(
        "onprem-llm; fwd=miss; detail=semantic-guard"
    )
    assert len(chats(engine)) == 2
    assert gw.sample(LOOKUPS, tenant=TENANT, model="tiny-llama", result="guard") == 1


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("Which ports should be open?", "Which ports should not be open?"),
        ('Grep for "timeout" in the logs', 'Grep for "deadline" in the logs'),
        ("What does max_tokens do?", "What does max_length do?"),
        ("Explain error E1001 please", "Explain error E1002 please"),
        ("Is the office in Paris open?", "Is the office in Berlin open?"),
    ],
)
async def test_guard_terms_tell_near_misses_apart(stored: str, asked: str) -> None:
    assert guard_terms(stored) != guard_terms(asked)


@pytest.mark.parametrize(
    ("stored", "asked"),
    [
        ("How do I reset my password?", "How can I reset my password, please?"),
        ("What is the capital of France?", "what's the capital city of France"),
        ("Restart nginx on port 8080", "On port 8080, how do I restart nginx?"),
    ],
)
async def test_guard_terms_let_rewordings_through(stored: str, asked: str) -> None:
    assert guard_terms(stored) == guard_terms(asked)


async def test_tenants_never_share_semantic_hits(
    make_gateway: Any, engine: Any, embedder: Embedder, sync_redis: Any
) -> None:
    both = {**SEMANTIC, "tenants": {TENANT: {}, "globex": {}}}
    gw = await make_gateway(semantic=both)
    await gw.post(CHAT, ask("How do I reset my password?"))
    await gw.drain()
    other, _body = await gw.post(CHAT, ask("How do I reset my password?"), tenant="globex")
    await gw.drain()
    assert other.headers["Cache-Status"].startswith("onprem-llm; fwd=miss; detail=semantic-empty")
    assert len(chats(engine)) == 2
    sets = sorted(k.decode() for k in sync_redis.scan_iter(match="onprem-llm:semantic:*"))
    assert [key.split(":")[2] for key in sets] == [TENANT, "globex"]


async def test_a_tenant_without_the_semantic_cache_gets_the_exact_cache_only(
    make_gateway: Any, engine: Any, embedder: Embedder
) -> None:
    gw = await make_gateway(semantic=SEMANTIC)
    response, _body = await store_then_ask(
        gw, ask("How do I reset my password?"), ask("my password: how do I reset"), tenant="x"
    )
    assert response.headers["Cache-Status"] == "onprem-llm; fwd=miss; stored"
    assert [call["input"] for call in embedder.inputs] == ["How do I reset my password?"]


async def test_the_threshold_may_be_raised_by_a_tenant_or_a_request_never_lowered(
    make_gateway: Any, engine: Any, embedder: Embedder
) -> None:
    # 5 of 6 words shared: cosine about 5/6 with the stand-in model.
    stored, asked = "alpha beta gamma delta epsilon zeta", "alpha beta gamma delta epsilon eta"
    floor = {**SEMANTIC, "threshold_floor": 0.8, "threshold": 0.9}
    gw = await make_gateway(semantic=floor)
    lowered, _body = await store_then_ask(
        gw, ask(stored), ask(asked), headers={"X-Cache-Min-Similarity": "0.5"}
    )
    assert "detail=semantic-threshold" in lowered.headers["Cache-Status"]

    tenant = {**floor, "tenants": {TENANT: {"threshold": 0.8}}}
    gw = await make_gateway(semantic=tenant)
    stored, asked = "one two three four five six", "one two three four five seven"
    await gw.post(CHAT, ask(stored))
    await gw.drain()
    hit, _body = await gw.post(CHAT, ask(asked))
    assert hit.headers["Cache-Status"].startswith("onprem-llm; hit")
    assert hit.headers["Cache-Status"].endswith("detail=semantic")
    assert 0.8 <= float(hit.headers["X-Cache-Similarity"]) < 0.9
    raised, _body = await gw.post(
        CHAT, ask(asked + " "), headers={"X-Cache-Min-Similarity": "0.99"}
    )
    assert "detail=semantic-threshold" in raised.headers["Cache-Status"]


@pytest.mark.parametrize(
    ("asked", "reason"),
    [
        (
            chat_body(
                messages=[
                    {"role": "user", "content": "How do I reset my password?"},
                    {"role": "assistant", "content": "Open the settings page."},
                    {"role": "user", "content": "How do I reset it?"},
                ]
            ),
            "multi-turn",
        ),
        (ask("How do I reset my password?", tools=[{"type": "function"}]), "tools"),
        (ask("   "), "empty"),
        (
            chat_body(messages=[{"role": "user", "content": [{"type": "image_url"}]}]),
            "content",
        ),
    ],
)
async def test_requests_whose_context_is_not_covered_never_hit(
    make_gateway: Any, engine: Any, embedder: Embedder, asked: dict[str, Any], reason: str
) -> None:
    assert question_of(CHAT, asked, multi_turn=False) == reason
    gw = await make_gateway(semantic=SEMANTIC)
    response, _body = await store_then_ask(gw, ask("How do I reset my password?"), asked)
    assert "detail=semantic-ineligible" in response.headers["Cache-Status"]
    assert len(embedder.inputs) == 1  # only the stored question was embedded


async def test_other_generation_settings_or_system_prompt_never_hit(
    make_gateway: Any, engine: Any, embedder: Embedder
) -> None:
    gw = await make_gateway(semantic=SEMANTIC)
    stored = ask("How do I reset my password?")
    await gw.post(CHAT, stored)
    await gw.drain()
    longer, _body = await gw.post(CHAT, ask("my password: how do I reset", max_tokens=17))
    assert "detail=semantic-empty" in longer.headers["Cache-Status"]
    system = chat_body(
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "my password: how do I reset"},
        ]
    )
    french, _body = await gw.post(CHAT, system)
    assert "detail=semantic-empty" in french.headers["Cache-Status"]
    streamed, _body = await gw.post(CHAT, ask("my password: how do I reset", stream=True))
    assert "detail=semantic-empty" in streamed.headers["Cache-Status"]


async def test_a_stream_is_answered_from_a_stored_stream(
    make_gateway: Any, engine: Any, embedder: Embedder
) -> None:
    gw = await make_gateway(semantic=SEMANTIC)
    _first, first_body = await gw.post(CHAT, ask("How do I reset my password?", stream=True))
    await gw.drain()
    second, second_body = await gw.post(CHAT, ask("my password, how do I reset", stream=True))
    assert second.headers["Cache-Status"].endswith("detail=semantic")
    assert second_body == first_body
    assert second_body.endswith(b"data: [DONE]\n\n")


async def test_completions_prompts_qualify_too(
    make_gateway: Any, engine: Any, embedder: Embedder
) -> None:
    gw = await make_gateway(semantic=SEMANTIC)
    body = {"model": "tiny-llama", "prompt": "Capital of France is", "temperature": 0}
    await gw.post(COMPLETIONS, body)
    await gw.drain()
    second, _body = await gw.post(COMPLETIONS, {**body, "prompt": "capital of France is:"})
    assert second.headers["Cache-Status"].endswith("detail=semantic")


@pytest.mark.parametrize(
    ("answer", "delay", "result"),
    [
        (None, 0.5, "timeout"),
        (b"<html>bad gateway</html>", 0, "embedding"),
        ({"data": [{"embedding": ["x"] * DIMENSIONS}]}, 0, "embedding"),
        ({"data": [{"embedding": [float("nan")] * DIMENSIONS}]}, 0, "embedding"),
        ({"data": [{"embedding": [0.0] * DIMENSIONS}]}, 0, "embedding"),
        ({"data": [{"embedding": [0.1] * 384}]}, 0, "dimension"),
        ({"data": []}, 0, "embedding"),
    ],
)
async def test_a_slow_or_broken_embedding_model_is_a_counted_miss(
    make_gateway: Any,
    engine: Any,
    embedder: Embedder,
    answer: Any,
    delay: float,
    result: str,
) -> None:
    gw = await make_gateway(semantic={**SEMANTIC, "timeout_ms": 100})
    embedder.answer, embedder.delay = answer, delay
    response, body = await gw.post(CHAT, ask("How do I reset my password?"))
    await gw.drain()
    assert response.status == 200
    assert json.loads(body)["choices"][0]["message"]["content"] == "Hello from the engine"
    assert f"detail=semantic-{result}" in response.headers["Cache-Status"]
    assert gw.sample(LOOKUPS, tenant=TENANT, model="tiny-llama", result=result) == 1
    # A miss that could not be embedded is not indexed.
    assert gw.sample("onprem_llm_gateway_semantic_embedding_duration_seconds_count") == 1


async def test_a_huge_question_is_cut_before_it_is_embedded(
    make_gateway: Any, engine: Any, embedder: Embedder
) -> None:
    gw = await make_gateway(
        semantic={**SEMANTIC, "max_input_tokens": 8, "max_input_chars": 100}, max_body_bytes=65536
    )
    await gw.post(CHAT, ask("word " * 5000))
    assert len(embedder.inputs[0]["input"]) == 100
    assert embedder.inputs[0]["truncate_prompt_tokens"] == 8


async def test_an_entry_gone_since_it_was_indexed_is_a_miss_and_leaves_the_set(
    make_gateway: Any, engine: Any, embedder: Embedder, sync_redis: Any
) -> None:
    gw = await make_gateway(semantic=SEMANTIC)
    await gw.post(CHAT, ask("How do I reset my password?"))
    await gw.drain()
    for key in sync_redis.scan_iter(match="onprem-llm:cache:*"):
        sync_redis.delete(key)
    [set_key] = list(sync_redis.scan_iter(match="onprem-llm:semantic:*"))
    assert sync_redis.execute_command("VCARD", set_key) == 1
    response, _body = await gw.post(CHAT, ask("my password: how do I reset"))
    await gw.drain()
    assert "detail=semantic-stale" in response.headers["Cache-Status"]
    # The answer just stored is indexed; the element of the deleted entry is gone.
    assert sync_redis.execute_command("VCARD", set_key) == 1


async def test_expired_elements_are_not_found(
    make_gateway: Any, engine: Any, embedder: Embedder, sync_redis: Any
) -> None:
    clock = [1_800_000_000.0]
    gw = await make_gateway(semantic=SEMANTIC)
    gw.gateway.semantic._wall = lambda: clock[0]  # type: ignore[union-attr]
    await gw.post(CHAT, ask("How do I reset my password?"))
    await gw.drain()
    clock[0] += 7200  # past the entry's 3600 s
    response, _body = await gw.post(CHAT, ask("my password: how do I reset"))
    assert "detail=semantic-empty" in response.headers["Cache-Status"]


async def test_evicting_a_wrong_hit_by_request_id(
    make_gateway: Any, engine: Any, embedder: Embedder, sync_redis: Any
) -> None:
    gw = await make_gateway(semantic=SEMANTIC)
    headers = {"X-Onprem-Request-ID": "wrong-hit-1"}
    hit, _body = await store_then_ask(
        gw,
        ask("How do I reset my password?"),
        ask("my password: how do I reset"),
        headers=headers,
    )
    assert hit.headers["Cache-Status"].endswith("detail=semantic")
    client = gw.gateway.store.client  # type: ignore[union-attr]
    dry = await evict(client, "onprem-llm:", "wrong-hit-1", dry_run=True)
    assert dry["found"] and not dry["evicted"]
    done = await evict(client, "onprem-llm:", "wrong-hit-1")
    assert done["found"] and done["evicted"]
    assert await evict(client, "onprem-llm:", "wrong-hit-1") == {
        "request_id": "wrong-hit-1",
        "found": False,
        "evicted": False,
    }
    again, _body = await gw.post(CHAT, ask("my password: how do I reset"))
    assert again.headers["Cache-Status"].startswith("onprem-llm; fwd=miss")
    assert len(chats(engine)) == 2


@pytest.mark.parametrize(
    ("semantic", "message"),
    [
        ({"threshold": 1.2}, "semantic.threshold: expected a cosine similarity above 0"),
        ({"threshold": 0.9}, "semantic.threshold: expected at least semantic.threshold_floor"),
        (
            {"tenants": {TENANT: {"threshold": 0.9}}},
            "semantic.tenants.acme.threshold: a tenant may raise the threshold, not lower it",
        ),
        ({"dimensions": 0}, "semantic.dimensions: expected an integer 1..65536"),
        ({"embedding_model": ""}, "semantic.embedding_model: expected a non-empty string"),
        ({"tenants": {TENANT: {"modles": []}}}, "semantic.tenants.acme.modles: unknown key"),
    ],
)
async def test_bad_settings_are_refused_naming_the_key(
    engine: Any, semantic: dict[str, Any], message: str
) -> None:
    from gateway_fakes import base_config, merge

    with pytest.raises(ConfigError, match=re.escape(message)):
        parse_config(merge(base_config(engine.url), {"semantic": merge(SEMANTIC, semantic)}))


async def test_the_semantic_cache_needs_the_exact_cache(engine: Any) -> None:
    from gateway_fakes import base_config, merge

    config = merge(base_config(engine.url), {"semantic": SEMANTIC, "cache": {"enabled": False}})
    with pytest.raises(ConfigError, match=r"semantic\.tenants: .*needs cache\.enabled true"):
        parse_config(config)


async def test_a_tenant_purge_takes_its_semantic_sets_or_the_purged_elements(
    make_gateway: Any, engine: Any, embedder: Embedder, sync_redis: Any
) -> None:
    from onprem_llm.gateway.purge import purge, purge_semantic

    both = {**SEMANTIC, "tenants": {TENANT: {}, "globex": {}}}
    gw = await make_gateway(semantic=both)
    for tenant in (TENANT, "globex"):
        await gw.post(CHAT, ask("How do I reset my password?"), tenant=tenant)
        await gw.post(CHAT, ask("Where is the VPN guide?"), tenant=tenant)
    await gw.drain()
    client = gw.gateway.store.client  # type: ignore[union-attr]
    sets = [k.decode() for k in sync_redis.scan_iter(match=f"onprem-llm:semantic:{TENANT}:*")]
    assert [sync_redis.execute_command("VCARD", key) for key in sets] == [2]
    # Older than: only the elements of the entries deleted leave the set.
    deleted: list[str] = []
    [entry, _other] = sorted(k.decode() for k in sync_redis.scan_iter(match="*cache:acme:*"))
    sync_redis.set(entry, json.dumps({**json.loads(sync_redis.get(entry)), "created": 1.0}))
    assert (
        await purge(client, prefix="onprem-llm:", scope=TENANT, older_than=60, deleted_keys=deleted)
        == 1
    )
    removed = await purge_semantic(client, prefix="onprem-llm:", tenant=TENANT, entry_keys=deleted)
    assert removed == 1
    assert sync_redis.execute_command("VCARD", sets[0]) == 1
    # The whole tenant: its sets go, the other tenant's stay.
    assert await purge_semantic(client, prefix="onprem-llm:", tenant=TENANT) == 1
    assert not sync_redis.exists(sets[0])
    assert len(list(sync_redis.scan_iter(match="onprem-llm:semantic:globex:*"))) == 1


async def test_every_command_used_is_in_the_cache_users_acl_with_the_semantic_cache(
    make_gateway: Any, engine: Any, embedder: Embedder, redis_server: Any
) -> None:
    """The redis role's grant (redis_cache_commands + redis_semantic_cache_commands) is
    enough for lookups, stores, hits, evictions and purges."""
    from redis.exceptions import NoPermissionError

    from onprem_llm.gateway.purge import purge, purge_semantic

    restricted = await restricted_cache_client(
        redis_server, granted_commands("redis_cache_commands", "redis_semantic_cache_commands")
    )
    with pytest.raises(NoPermissionError):
        await restricted.execute_command("VCARD", "onprem-llm:x")  # the ACL is enforced
    gw = await make_gateway(client=restricted, semantic=SEMANTIC)
    headers = {"X-Onprem-Request-ID": "acl-1"}
    hit, _body = await store_then_ask(
        gw, ask("How do I reset my password?"), ask("my password: how do I reset"), headers=headers
    )
    assert hit.headers["Cache-Status"].endswith("detail=semantic")
    assert (await evict(restricted, "onprem-llm:", "acl-1"))["evicted"]
    await gw.post(CHAT, ask("Where is the VPN guide?"))
    await gw.drain()
    deleted: list[str] = []
    assert await purge(restricted, prefix="onprem-llm:", scope=TENANT, deleted_keys=deleted) == 1
    assert await purge_semantic(restricted, prefix="onprem-llm:", tenant=TENANT) == 1
    assert gw.sample("onprem_llm_gateway_cache_errors_total", operation="semantic") == 0
    assert gw.sample(LOOKUPS, tenant=TENANT, model="tiny-llama", result="unavailable") == 0


async def test_a_slow_vector_search_is_a_timeout_and_the_exact_cache_goes_on(
    make_gateway: Any, engine: Any, embedder: Embedder, redis_server: Any
) -> None:
    import fakeredis

    class SlowSearch(fakeredis.FakeAsyncRedis):  # type: ignore[misc]
        async def execute_command(self, *args: Any, **options: Any) -> Any:
            if args and args[0] == "VSIM":
                await asyncio.sleep(0.3)
            return await super().execute_command(*args, **options)

    gw = await make_gateway(
        client=SlowSearch(server=redis_server),
        semantic={**SEMANTIC, "timeout_ms": 100},
        redis={"lookup_budget_ms": 20},
    )
    first, _body = await gw.post(CHAT, ask("How do I reset my password?"))
    assert "detail=semantic-timeout; stored" in first.headers["Cache-Status"]
    await gw.drain()
    # The exact cache was not switched off by the slow search.
    again, _body = await gw.post(CHAT, ask("How do I reset my password?"))
    assert again.headers["Cache-Status"].startswith("onprem-llm; hit; ttl=")
    assert gw.gateway.store.available  # type: ignore[union-attr]
    assert gw.sample(LOOKUPS, tenant=TENANT, model="tiny-llama", result="timeout") == 1
