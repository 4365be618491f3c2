"""Cache keys: canonical JSON, what is in the key and what is not."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from onprem_llm.gateway.cache_key import (
    KEY_VERSION,
    CacheKey,
    KeyInputs,
    canonical_json,
    entry_pattern,
    glob_escape,
)
from onprem_llm.gateway.config import DEFAULT_EXCLUDED_FIELDS

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0}


def key(body: dict[str, Any] | None = None, **parts: Any) -> CacheKey:
    arguments: dict[str, Any] = {
        "scope": "acme",
        "path": "/v1/chat/completions",
        "model": "m",
        "revision": "r1",
        "stream": False,
        "excluded_fields": DEFAULT_EXCLUDED_FIELDS,
    }
    arguments.update(parts)
    return KeyInputs(**arguments).key(BODY if body is None else body)


def test_the_digest_is_sha256_of_the_documented_canonical_json() -> None:
    material = {
        "v": KEY_VERSION,
        "scope": "acme",
        "path": "/v1/chat/completions",
        "model": "m",
        "revision": "r1",
        "stream": False,
        "body": BODY,
    }
    text = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert key().digest == hashlib.sha256(text.encode()).hexdigest()


def test_canonical_json_sorts_keys_without_spaces_and_keeps_unicode() -> None:
    assert canonical_json({"b": 1, "a": ["é", {"d": 2, "c": None}]}) == (
        '{"a":["é",{"c":null,"d":2}],"b":1}'
    )


def test_field_order_does_not_matter() -> None:
    reordered = dict(reversed(list(BODY.items())))
    assert key(reordered) == key()


def test_excluded_fields_do_not_change_the_key() -> None:
    noisy = {
        **BODY,
        "user": "u-42",
        "metadata": {"trace": "x"},
        "stream_options": {"include_usage": True},
        "store": True,
    }
    assert key(noisy) == key()


def test_every_other_field_changes_the_key() -> None:
    for field, value in {
        "max_tokens": 5,
        "top_p": 0.5,
        "stop": ["\n"],
        "seed": 1,
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "logprobs": True,
    }.items():
        assert key({**BODY, field: value}) != key(), field


def test_model_revision_stream_path_and_scope_are_in_the_key() -> None:
    base = key()
    assert key(revision="r2") != base
    assert key(model="other") != base
    assert key(stream=True) != base
    assert key(path="/v1/completions") != base
    assert key(scope="globex") != base
    assert key(scope="site") != base


def test_redis_keys_carry_quoted_scope_and_model_but_no_body() -> None:
    cache_key = key(scope="a:b/c d", model="org/model:7b")
    entry = cache_key.entry_key("onprem-llm:")
    assert entry == f"onprem-llm:cache:a%3Ab%2Fc%20d:org%2Fmodel%3A7b:{cache_key.digest}"
    assert cache_key.lease_key("p:").startswith("p:lease:a%3Ab%2Fc%20d:org%2Fmodel%3A7b:")
    assert "hi" not in entry


def test_lone_surrogates_do_not_break_the_key() -> None:
    assert key({**BODY, "messages": [{"role": "user", "content": "\ud800"}]}).digest


def test_purge_patterns_match_one_scope_and_escape_glob_characters() -> None:
    assert entry_pattern("onprem-llm:", "acme") == "onprem-llm:cache:acme:*:*"
    assert entry_pattern("onprem-llm:", "acme", "org/m") == "onprem-llm:cache:acme:org%2Fm:*"
    assert entry_pattern("p[1]:", "a*b?") == "p\\[1\\]:cache:a%2Ab%3F:*:*"
    assert glob_escape("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"
