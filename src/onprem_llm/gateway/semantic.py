"""The semantic cache: a question close enough to one already answered gets that answer.

Only what the exact cache would store is considered, and only when the whole context but the
last question matches exactly: the request body with the last user message (or the prompt)
left out is hashed into a context digest, so the system prompt, earlier turns, the model and
revision, `stream` and every generation setting must be identical. By default only single-turn
requests qualify (system messages, then one user message); requests with tools never do.

The last question is embedded by an embedding model served at the site, called through
HAProxy's loopback frontend (`embedding_backend`), never a cloud API. Its vector is searched in
a Redis 8 vector set of the tenant, model and context digest (`VSIM`, no filter: a set per
context keeps the search exact and about four times faster than filtering one set per model,
measured on Redis 8.0); each element is the digest of an exact-cache entry and carries
attributes:
  g  the guard digest        e  the entry's expiry (epoch seconds)
A candidate answers when its cosine similarity reaches the threshold (the site's, a tenant's,
or the request's `X-Cache-Min-Similarity`, never below the site's floor) and its guard digest
matches: numbers, quoted strings, identifiers, capitalised names and negations must be the
same in both questions, so "port 8080" never answers "port 8081" and "should not" never answers
"should". Neither the question nor its embedding input is stored in clear.

Everything fails to a miss: an embedding over its time budget, an embedding that is not a
vector of the configured dimension, a Redis error. Expired entries leave the set: a lookup
skips them, a store removes expired neighbours of the new element, and the set key expires
max_ttl_seconds after its last write.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import math
import re
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from .cache_key import KeyInputs
from .config import GatewayConfig, SemanticConfig
from .metrics import GatewayMetrics
from .store import CacheStore

log = logging.getLogger("onprem_llm.gateway.semantic")

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
THRESHOLD_HEADER = "X-Cache-Min-Similarity"
SIMILARITY_HEADER = "X-Cache-Similarity"

# Miss reasons (the `result` label and Cache-Status `detail=semantic-REASON`).
HIT = "hit"
INELIGIBLE = "ineligible"
EMPTY = "empty"
THRESHOLD = "threshold"
GUARD = "guard"
TIMEOUT = "timeout"
EMBEDDING = "embedding"
DIMENSION = "dimension"
UNAVAILABLE = "unavailable"
STALE = "stale"
RESULTS: tuple[str, ...] = (HIT, INELIGIBLE, EMPTY, THRESHOLD, GUARD, TIMEOUT, EMBEDDING)
RESULTS += (DIMENSION, STALE, UNAVAILABLE)

_CONTEXT_PLACEHOLDER = "\x00question\x00"
_SYSTEM_ROLES = frozenset({"system", "developer"})
_TOOL_FIELDS = ("tools", "functions", "tool_choice", "function_call")

# --- the guard ----------------------------------------------------------------------------

_QUOTED = re.compile(
    r'"([^"\n]{1,200})"|\u201c([^\u201d\n]{1,200})\u201d|`([^`\n]{1,200})`'
    r"|(?<!\w)'([^'\n]{1,200})'(?!\w)"
)
_NUMBER = re.compile(r"\d+(?:[.,:/-]\d+)*")
# snake_case, dotted or slashed names, camelCase, paths, flags, error codes like E1001.
_IDENTIFIER = re.compile(
    r"(?<![\w./-])(?:[-/.]*[A-Za-z_]\w*(?:[./:-]+\w+)+|\w*_\w+|[a-z]+[A-Z]\w*|--?[a-z][\w-]*"
    r"|[A-Za-z]+\d\w*)"
)
_WORD = re.compile(r"[A-Za-z][A-Za-z'\u2019-]*")
_SENTENCE_END = re.compile(r"[.!?:;]\s*$")
_NEGATIONS = frozenset(
    {
        "not",
        "no",
        "never",
        "without",
        "none",
        "nothing",
        "nobody",
        "nowhere",
        "neither",
        "nor",
        "cannot",
        "unless",
        "except",
    }
)


def _negations(text: str) -> set[str]:
    found = set()
    for match in _WORD.finditer(text):
        word = match.group(0).lower().replace("\u2019", "'")
        if word in _NEGATIONS or word.endswith("n't"):
            found.add("not")  # "can't", "cannot" and "not" are one negation
    return found


def _names(text: str) -> set[str]:
    """Capitalised words that do not start a sentence (names of people, places, products)."""
    names = set()
    for match in _WORD.finditer(text):
        word = match.group(0)
        if not word[0].isupper() or word in ("I", "I'm", "I've", "I'd", "I'll"):
            continue
        before = text[: match.start()]
        if not before.strip() or _SENTENCE_END.search(before) or before.rstrip().endswith("\n"):
            continue
        names.add(word.lower())
    return names


def guard_terms(text: str) -> frozenset[str]:
    """What must be identical for a stored answer to answer this question too."""
    terms: set[str] = set()
    for match in _QUOTED.finditer(text):
        quoted = next(group for group in match.groups() if group is not None)
        terms.add("q:" + quoted.strip().lower())
    for match in _IDENTIFIER.finditer(text):
        terms.add("i:" + match.group(0).lower())
    for match in _NUMBER.finditer(text):
        terms.add("n:" + match.group(0).replace(",", ""))
    terms.update("w:" + name for name in _names(text))
    terms.update("x:" + word for word in _negations(text))
    return frozenset(terms)


def guard_digest(text: str) -> str:
    material = "\x1f".join(sorted(guard_terms(text)))
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()[:32]


# --- which requests qualify ---------------------------------------------------------------


def _text(content: Any) -> str | None:
    """A message's text: a string, or a list of text parts only."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                return None
            text = part.get("text")
            if not isinstance(text, str):
                return None
            parts.append(text)
        return "\n".join(parts)
    return None


@dataclass(frozen=True, slots=True)
class Question:
    """The part of a request that is embedded, and the body it was taken from."""

    text: str
    context_body: dict[str, Any]


def question_of(path: str, body: Mapping[str, Any], multi_turn: bool) -> Question | str:
    """The question to embed, or why the request does not qualify (a short reason)."""
    if any(body.get(name) for name in _TOOL_FIELDS):
        return "tools"
    if path == COMPLETIONS_PATH:
        prompt = body.get("prompt")
        if not isinstance(prompt, str):
            return "prompt"
        text, context = prompt, {**body, "prompt": _CONTEXT_PLACEHOLDER}
    elif path == CHAT_PATH:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages"
        last = messages[-1]
        if not isinstance(last, dict) or last.get("role") != "user":
            return "last-message"
        text_or_none = _text(last.get("content"))
        if text_or_none is None:
            return "content"
        earlier = messages[:-1]
        if not multi_turn and any(
            not isinstance(message, dict) or message.get("role") not in _SYSTEM_ROLES
            for message in earlier
        ):
            return "multi-turn"
        text = text_or_none
        context = {**body, "messages": [*earlier, {**last, "content": _CONTEXT_PLACEHOLDER}]}
    else:
        return "path"
    if not text.strip():
        return "empty"
    return Question(text, context)


# --- results ------------------------------------------------------------------------------


@dataclass(slots=True)
class Pending:
    """A semantic miss whose answer, once stored, is added to the set."""

    set_key: str
    guard: str
    vector: bytes


@dataclass(slots=True)
class Lookup:
    """The outcome: a hit (digest and similarity), or a miss reason and maybe a Pending."""

    result: str
    digest: str | None = None
    similarity: float | None = None
    set_key: str | None = None
    pending: Pending | None = None


class _Miss(Exception):
    def __init__(self, result: str) -> None:
        super().__init__(result)
        self.result = result


def _quote(text: str) -> str:
    return quote(text, safe="")


def requested_threshold(value: str | None) -> float | None:
    """The client's X-Cache-Min-Similarity: a number in 0..1, else ignored (None)."""
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    return number if math.isfinite(number) and 0.0 <= number <= 1.0 else None


def parse_similar(reply: Any) -> list[tuple[str, float, Any]]:
    """VSIM ... WITHSCORES [WITHATTRIBS] as (element, cosine, attributes): RESP2 lists or the
    mappings some redis-py releases build."""
    out: list[tuple[str, float, Any]] = []
    if isinstance(reply, dict):
        items: list[Any] = []
        for element, value in reply.items():
            if isinstance(value, list | tuple) and value:
                items.append((element, value[0], value[1] if len(value) > 1 else None))
            elif isinstance(value, dict):
                items.append((element, value.get("score"), value.get("attributes")))
            else:
                items.append((element, value, None))
    elif isinstance(reply, list | tuple):
        width = 3 if len(reply) % 3 == 0 and _looks_like_triples(reply) else 2
        items = [
            tuple(reply[index : index + width]) + ((None,) if width == 2 else ())
            for index in range(0, len(reply) - width + 1, width)
        ]
    else:
        return out
    for element, score, attributes in items:
        name = element.decode() if isinstance(element, bytes) else str(element)
        try:
            similarity = float(score)
        except (TypeError, ValueError):
            continue
        # Redis reports (1 + cosine) / 2.
        out.append((name, 2.0 * similarity - 1.0, attributes))
    return out


def _looks_like_triples(reply: list[Any] | tuple[Any, ...]) -> bool:
    if len(reply) < 3:
        return False
    third = reply[2]
    if isinstance(third, bytes):
        third = third.decode(errors="replace")
    return isinstance(third, str) and third.startswith("{")


def _attributes(raw: Any) -> dict[str, Any]:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    if not isinstance(raw, str):
        return {}
    with contextlib.suppress(ValueError, RecursionError):
        value = json.loads(raw)
        if isinstance(value, dict):
            return value
    return {}


def _expiry(attributes: Mapping[str, Any]) -> float:
    value = attributes.get("e")
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


# --- the cache ----------------------------------------------------------------------------


class SemanticCache:
    """Embeds questions, searches and fills the tenants' vector sets."""

    def __init__(
        self,
        config: GatewayConfig,
        store: CacheStore,
        metrics: GatewayMetrics,
        session: Callable[[], aiohttp.ClientSession | None],
        *,
        wall: Callable[[], float] = time.time,
    ) -> None:
        assert config.semantic is not None
        self.config: SemanticConfig = config.semantic
        self._gateway = config
        self._store = store
        self._metrics = metrics
        self._session = session
        self._wall = wall
        self._prefix = config.redis.key_prefix
        # A lookup's Redis calls may use what the embedding left of the semantic budget, and
        # never less than an exact lookup's; index writes run in the background.
        self._budget = config.redis.lookup_budget_ms / 1000
        self._write_timeout = max(
            config.redis.write_timeout_ms / 1000, self.config.timeout_ms / 1000
        )
        self._max_ttl = config.cache.max_ttl_seconds
        self._url = config.upstream_url + self.config.embedding_path
        self._warned: set[str] = set()

    def enabled_for(self, tenant: str, model: str) -> bool:
        settings = self.config.tenants.get(tenant)
        return settings is not None and (not settings.models or model in settings.models)

    def threshold(self, tenant: str, requested: float | None) -> float:
        settings = self.config.tenants.get(tenant)
        base = settings.threshold if settings and settings.threshold else self.config.threshold
        return max(base, self.config.threshold_floor, requested or 0.0)

    def set_key(self, tenant: str, model: str, context: str) -> str:
        # The embedding model and its dimension name the set too: another model starts anew.
        embedding = f"{_quote(self.config.embedding_model)}:{self.config.dimensions}"
        return f"{self._prefix}semantic:{_quote(tenant)}:{_quote(model)}:{embedding}:{context}"

    def hit_key(self, request_id: str) -> str:
        return f"{self._prefix}semantic-hit:{_quote(request_id)}"

    def count(self, tenant: str, model: str, result: str) -> None:
        self._metrics.semantic_lookups.labels(tenant, model, result).inc()

    async def lookup(
        self,
        *,
        tenant: str,
        inputs: KeyInputs,
        body: Mapping[str, Any],
        requested: float | None,
    ) -> Lookup:
        """Search the tenant's set; never raises (every failure is a miss with its reason)."""
        question = question_of(inputs.path, body, self.config.multi_turn)
        if isinstance(question, str):
            return Lookup(INELIGIBLE)
        # The exact key of the request without its question: system prompt, earlier turns,
        # model, revision, stream and every generation setting.
        context = inputs.key(question.context_body).digest[:32]
        set_key = self.set_key(tenant, inputs.model, context)
        deadline = time.perf_counter() + self.config.timeout_ms / 1000
        try:
            vector = await self.embed(question.text)
        except _Miss as miss:
            return Lookup(miss.result)
        pending = Pending(set_key, guard_digest(question.text), vector)
        budget = max(self._budget, deadline - time.perf_counter())
        try:
            found = await self._search(set_key, vector, budget)
        except _Miss as miss:
            return Lookup(miss.result, pending=None if miss.result == UNAVAILABLE else pending)
        if not found:
            return Lookup(EMPTY, pending=pending)
        threshold = self.threshold(tenant, requested)
        above = [item for item in found if item[1] >= threshold]
        best = max(item[1] for item in found)
        self._metrics.semantic_similarity.observe(max(0.0, best))
        if not above:
            return Lookup(THRESHOLD, similarity=best, pending=pending)
        for element, similarity, attributes in sorted(above, key=lambda item: -item[1]):
            if attributes.get("g") == pending.guard:
                return Lookup(HIT, element, similarity, set_key, pending)
        return Lookup(GUARD, similarity=above[0][1], pending=pending)

    async def embed(self, text: str) -> bytes:
        """The question's embedding as a float32 blob, within the time budget."""
        cfg = self.config
        session = self._session()
        if session is None:
            raise _Miss(UNAVAILABLE)
        payload = {
            "model": cfg.embedding_model,
            # Characters past what the model reads cost transfer only: cut before sending.
            "input": text[: cfg.max_input_chars],
            "truncate_prompt_tokens": cfg.max_input_tokens,
            "encoding_format": "float",
        }
        headers = {cfg.backend_header: cfg.embedding_backend, "Content-Type": "application/json"}
        started = time.perf_counter()
        try:
            async with asyncio.timeout(cfg.timeout_ms / 1000):
                async with session.post(
                    self._url, data=json.dumps(payload).encode(), headers=headers
                ) as response:
                    raw = await response.read()
                    status = response.status
        except TimeoutError:
            raise _Miss(TIMEOUT) from None
        except aiohttp.ClientError as exc:
            self._warn("embedding-call", f"embedding call failed: {type(exc).__name__}")
            raise _Miss(EMBEDDING) from None
        finally:
            self._metrics.semantic_embedding_duration.observe(time.perf_counter() - started)
        if status != 200:
            self._warn(f"embedding-{status}", f"embedding model answered HTTP {status}")
            raise _Miss(EMBEDDING)
        return self._vector(raw)

    def _vector(self, raw: bytes) -> bytes:
        try:
            value = json.loads(raw)
            embedding = value["data"][0]["embedding"]
        except (ValueError, KeyError, IndexError, TypeError, RecursionError):
            self._warn("embedding-shape", "embedding answer is not an OpenAI embeddings object")
            raise _Miss(EMBEDDING) from None
        if not isinstance(embedding, list) or not all(
            isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)
            for x in embedding
        ):
            self._warn("embedding-values", "embedding is not a list of finite numbers")
            raise _Miss(EMBEDDING)
        if len(embedding) != self.config.dimensions:
            self._warn(
                "embedding-dimension",
                f"embedding has {len(embedding)} dimensions, semantic.dimensions says "
                f"{self.config.dimensions}",
            )
            raise _Miss(DIMENSION)
        if not any(embedding):
            raise _Miss(EMBEDDING)
        return struct.pack(f"<{len(embedding)}f", *embedding)

    def _warn(self, kind: str, message: str) -> None:
        """Log each kind of fault once per process (they would otherwise flood the log)."""
        if kind not in self._warned:
            self._warned.add(kind)
            log.warning("semantic cache: %s (counted as misses from now on)", message)

    async def _redis(self, command: Callable[[], Awaitable[Any]], timeout: float) -> Any:
        """A Redis call: a slow answer or a command error (wrong dimension, unknown command,
        a missing ACL grant) is a miss; a connection error also opens the exact cache's
        breaker, as a failed exact lookup does."""
        store = self._store
        if not store.available:
            raise _Miss(UNAVAILABLE)
        try:
            return await store._shielded(command, timeout)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            # A vector search slower than its budget says nothing of Redis' health.
            raise _Miss(TIMEOUT) from None
        except Exception as exc:
            text = str(exc)
            if "dimension" in text.lower():
                self._warn("redis-dimension", f"the vector set refuses this dimension: {text}")
                raise _Miss(DIMENSION) from None
            if type(exc).__name__ in ("ResponseError", "NoPermissionError"):
                self._warn("redis-" + type(exc).__name__, f"Redis refused a command: {text}")
                raise _Miss(UNAVAILABLE) from None
            store._failed("semantic", f"{type(exc).__name__}: {text[:200]}")
            raise _Miss(UNAVAILABLE) from None

    async def _search(
        self, set_key: str, vector: bytes, budget: float
    ) -> list[tuple[str, float, dict[str, Any]]]:
        """The closest unexpired elements, with the attributes of those above the floor."""
        count = self.config.candidates

        def command() -> Awaitable[Any]:
            return self._store.client.execute_command(  # type: ignore[no-any-return]
                "VSIM", set_key, "FP32", vector, "WITHSCORES", "COUNT", count
            )

        started = time.perf_counter()
        reply = await self._redis(command, budget)
        found = parse_similar(reply)
        if not found:
            return []
        above = [item for item in found if item[1] >= self.config.threshold_floor]
        attributes: list[Any] = []
        if above:

            def fetch() -> Awaitable[Any]:
                pipe = self._store.client.pipeline(transaction=False)
                for element, _similarity, _attributes in above:
                    pipe.execute_command("VGETATTR", set_key, element)
                return pipe.execute()  # type: ignore[no-any-return]

            remaining = max(self._budget, budget - (time.perf_counter() - started))
            attributes = list(await self._redis(fetch, remaining))
        pairs = zip(above, attributes, strict=False)
        by_element = {item[0]: _attributes(raw) for item, raw in pairs}
        now = self._wall()
        return [
            (name, similarity, by_element.get(name, {}))
            for name, similarity, _unused in found
            if name not in by_element or _expiry(by_element[name]) > now
        ]

    async def add(self, pending: Pending, digest: str, expires: float) -> None:
        """Index a stored answer (background write); expired neighbours leave the set."""
        now = int(self._wall())
        attributes = json.dumps({"g": pending.guard, "e": int(expires)}, separators=(",", ":"))
        key = pending.set_key

        def command() -> Awaitable[Any]:
            pipe = self._store.client.pipeline(transaction=False)
            pipe.execute_command(
                "VADD", key, "FP32", pending.vector, digest, "NOQUANT", "SETATTR", attributes
            )
            pipe.execute_command("EXPIRE", key, self._max_ttl)
            pipe.execute_command(
                "VSIM", key, "FP32", pending.vector, "COUNT", 16, "FILTER", f".e <= {now}"
            )
            return pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

        try:
            replies = await self._redis(command, self._write_timeout)
        except _Miss as miss:
            self._metrics.cache_errors.labels("semantic").inc()
            self._warn("store-" + miss.result, f"indexing an answer failed ({miss.result})")
            return
        for reply in replies[:1]:
            if isinstance(reply, Exception):
                text = str(reply)
                kind = "dimension" if "dimension" in text.lower() else "vadd"
                self._warn("store-" + kind, f"VADD refused: {text}")
                self._metrics.cache_errors.labels("semantic").inc()
                return
        expired = replies[2] if len(replies) > 2 and isinstance(replies[2], list) else []
        if expired:

            def remove() -> Awaitable[Any]:
                pipe = self._store.client.pipeline(transaction=False)
                for element in expired:
                    pipe.execute_command("VREM", key, element)
                return pipe.execute(raise_on_error=False)  # type: ignore[no-any-return]

            with contextlib.suppress(_Miss):
                await self._redis(remove, self._write_timeout)

    async def remove(self, set_key: str, digest: str) -> None:
        """Drop an element whose entry is gone (expired or purged)."""

        def command() -> Awaitable[Any]:
            return self._store.client.execute_command("VREM", set_key, digest)  # type: ignore[no-any-return]

        with contextlib.suppress(_Miss):
            await self._redis(command, self._write_timeout)

    async def remember_hit(
        self, request_id: str, set_key: str, digest: str, entry_key: str, ttl: int
    ) -> None:
        """What `evict` needs to undo a wrong hit, kept as long as the entry."""
        if not request_id or ttl <= 0:
            return
        value = json.dumps({"set": set_key, "element": digest, "entry": entry_key})
        name = self.hit_key(request_id)

        def command() -> Awaitable[Any]:
            return self._store.client.set(name, value, ex=ttl)  # type: ignore[no-any-return]

        with contextlib.suppress(_Miss):
            await self._redis(command, self._write_timeout)


async def evict(
    client: Any, prefix: str, request_id: str, *, dry_run: bool = False
) -> dict[str, Any]:
    """Undo the semantic hit a request got: delete the entry it was answered from and its
    element, so neither that question nor its neighbours get that answer again."""
    name = f"{prefix}semantic-hit:{_quote(request_id)}"
    raw = await client.get(name)
    result: dict[str, Any] = {"request_id": request_id, "found": raw is not None, "evicted": False}
    if raw is None:
        return result
    value = _attributes(raw)
    set_key, element, entry = value.get("set"), value.get("element"), value.get("entry")
    if not (isinstance(set_key, str) and isinstance(element, str) and isinstance(entry, str)):
        result["found"] = False
        return result
    if not set_key.startswith(prefix) or not entry.startswith(prefix):
        result["found"] = False
        return result
    result.update(entry=entry)
    if dry_run:
        return result
    removed = await client.execute_command("VREM", set_key, element)
    deleted = await client.delete(entry, name)
    result["evicted"] = bool(removed) or bool(deleted)
    return result
