"""What may be cached: Cache-Control parsing and the determinism matrix."""

from __future__ import annotations

from typing import Any

import pytest

from onprem_llm.gateway.policy import (
    NOT_CACHEABLE,
    NOT_DETERMINISTIC,
    CacheControl,
    parse_cache_control,
    uncacheable_reason,
)

CHAT = "/v1/chat/completions"


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], CacheControl()),
        (["no-cache"], CacheControl(no_cache=True)),
        (["No-Store"], CacheControl(no_store=True)),
        (["max-age=30"], CacheControl(max_age=30)),
        ([' max-age = "45" '], CacheControl(max_age=45)),
        (["MAX-AGE=10, no-cache"], CacheControl(no_cache=True, max_age=10)),
        (["max-age=10", "max-age=3"], CacheControl(max_age=3)),
        (['private, community="x,y", no-store'], CacheControl(no_store=True)),
        (["max-age=-1"], CacheControl()),
        (["max-age=abc, max-age"], CacheControl()),
        (["max-age=1.5"], CacheControl()),
        (["s-maxage=5, must-revalidate, no-transform"], CacheControl()),
        ([",,, ,no-cache,,"], CacheControl(no_cache=True)),
        (["max-age=0"], CacheControl(max_age=0)),
    ],
)
def test_cache_control_is_parsed_leniently(headers: list[str], expected: CacheControl) -> None:
    assert parse_cache_control(headers) == expected


BASE = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("path", "fields", "reason"),
    [
        (CHAT, {"temperature": 0}, None),
        (CHAT, {"temperature": 0.0}, None),
        (CHAT, {"temperature": 0.7, "seed": 42}, None),
        (CHAT, {"seed": 0}, None),
        (CHAT, {"temperature": 0, "n": 1}, None),
        (CHAT, {"temperature": 0, "n": None, "best_of": 1}, None),
        (CHAT, {"temperature": 0, "tools": [{"type": "function"}]}, None),
        (CHAT, {}, NOT_DETERMINISTIC),
        (CHAT, {"temperature": 0.7}, NOT_DETERMINISTIC),
        (CHAT, {"temperature": None}, NOT_DETERMINISTIC),
        (CHAT, {"temperature": False}, NOT_DETERMINISTIC),
        (CHAT, {"temperature": "0"}, NOT_DETERMINISTIC),
        (CHAT, {"seed": 1.5}, NOT_DETERMINISTIC),
        (CHAT, {"seed": True}, NOT_DETERMINISTIC),
        (CHAT, {"seed": "42"}, NOT_DETERMINISTIC),
        (CHAT, {"temperature": 0, "n": 2}, NOT_DETERMINISTIC),
        (CHAT, {"temperature": 0, "n": True}, NOT_DETERMINISTIC),
        (CHAT, {"temperature": 0, "best_of": 3}, NOT_DETERMINISTIC),
        ("/v1/embeddings", {}, None),
        ("/v1/embeddings", {"temperature": 0.9}, None),
        ("/v1/embeddings", {"n": 2}, NOT_DETERMINISTIC),
        ("/v1/completions", {"temperature": 0}, None),
    ],
)
def test_cacheability_matrix(path: str, fields: dict[str, Any], reason: str | None) -> None:
    assert uncacheable_reason(path, {**BASE, **fields}) == reason


@pytest.mark.parametrize(
    "body",
    [
        [],
        "text",
        None,
        {"messages": [], "temperature": 0},
        {"model": 7, "temperature": 0},
        {"model": None, "temperature": 0},
    ],
)
def test_no_json_object_with_a_string_model_is_not_cacheable(body: Any) -> None:
    assert uncacheable_reason(CHAT, body) == NOT_CACHEABLE
