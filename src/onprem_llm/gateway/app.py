"""The gateway service: HAProxy -> this -> the engines' frontend, with an exact response cache.

HAProxy has checked the API key and set the trusted tenant header. API POSTs on the configured
paths are looked up in Redis when they are deterministic; misses, bypasses and everything the
service does not understand go to `upstream_url` unchanged (hop-by-hop headers aside).

Cache-Status (RFC 9211) on every answer:
  hit                         `onprem-llm; hit; ttl=N` (`; collapsed` when it waited for another
                              request's answer: single-flight in this process or a lease held by
                              another gateway)
  miss                        `onprem-llm; fwd=miss` (`; stored` on a stored JSON answer; a
                              stream's header leaves before its end, so it never says stored)
  too old for max-age         `onprem-llm; fwd=stale`
  client no-cache             `onprem-llm; fwd=request`
  Redis failed or skipped     `onprem-llm; fwd=miss; detail=cache-unavailable`
  not cached                  `onprem-llm; fwd=bypass; detail=REASON` with REASON one of
                              no-store, not-deterministic, not-cacheable (no JSON object with a
                              string model), path (other paths and methods), disabled
  refused here (400, 413)     `onprem-llm; detail=invalid-request`

With the semantic cache on for the tenant and model, an exact miss is looked up by meaning
(semantic.py): a hit says `onprem-llm; hit; ttl=N; detail=semantic` with `X-Cache-Similarity`,
a miss adds `; detail=semantic-REASON` (threshold, guard, timeout, embedding, ...).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from . import metrics as m
from .audit import RequestAudit, answer_content, request_content
from .cache_key import SITE_SCOPE, CacheKey, KeyInputs
from .config import GatewayConfig
from .policy import is_embeddings, parse_cache_control, uncacheable_reason
from .semantic import HIT as SEMANTIC_HIT
from .semantic import (
    SIMILARITY_HEADER,
    THRESHOLD_HEADER,
    Pending,
    SemanticCache,
    requested_threshold,
)
from .semantic import STALE as SEMANTIC_STALE
from .sse import EventSplitter, event_json, is_done, is_usage_only, usage_of
from .store import CacheStore, CacheUnavailable, Entry, build_client, close_client

log = logging.getLogger("onprem_llm.gateway")

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_REQUEST_DROP = HOP_BY_HOP | {"host", "content-length"}
_RESPONSE_DROP = HOP_BY_HOP | {"content-length"}
# aiohttp adds these when absent; the engines should see only what the client sent.
# Route values HAProxy sets (on-prem, cloud:<provider>); anything else is not a label value.
_ROUTE = re.compile(r"^(on-prem|cloud:[a-z0-9][a-z0-9_-]{0,39})$")
_SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding", "Content-Type", "User-Agent")

LEASE_POLL_SECONDS = 0.05
CACHE_UNAVAILABLE = "onprem-llm; fwd=miss; detail=cache-unavailable"
INVALID_REQUEST = "onprem-llm; detail=invalid-request"
OTHER_MODEL = "other"

GATEWAY_KEY: Any = web.AppKey("gateway", object) if hasattr(web, "AppKey") else "gateway"


def _filter_headers(headers: Mapping[str, str], drop: frozenset[str]) -> CIMultiDict[str]:
    """Copy headers without hop-by-hop ones (including those the Connection header names)."""
    named = {
        token.strip().lower()
        for value in headers.getall("Connection", ())  # type: ignore[attr-defined]
        for token in value.split(",")
    }
    out: CIMultiDict[str] = CIMultiDict()
    for name, value in headers.items():
        lower = name.lower()
        if lower not in drop and lower not in named:
            out.add(name, value)
    return out


def _error_body(message: str, code: str, kind: str) -> bytes:
    error = {"message": message, "type": kind, "param": None, "code": code}
    return json.dumps({"error": error}).encode()


def _is_json(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/json"


@functools.lru_cache(maxsize=4096)
def tenant_salt(tenant: str) -> str:
    """vLLM `cache_salt` of a tenant: its prefix-cache blocks are not shared with others."""
    return hashlib.sha256(tenant.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class _Call:
    """One request on its way through the gateway."""

    request: web.Request
    tenant: str
    started: float
    body: bytes = b""
    api: bool = False
    model: str | None = None
    stream: bool = False
    client_usage: bool = False
    strip_usage: bool = False
    lease: str | None = None
    lease_at: float = 0.0
    parsed: Any = None
    similarity: float | None = None
    semantic: Pending | None = None


class Gateway:
    """The service: owns the upstream session, the cache store and the metrics."""

    def __init__(
        self,
        config: GatewayConfig,
        *,
        redis_client: Any = None,
        metrics: m.GatewayMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.metrics = metrics or m.GatewayMetrics()
        self._wall = wall
        self._clock = clock
        cache = config.cache
        self._paths = cache.paths
        self._excluded = cache.excluded_fields
        self._tenant_header = config.tenant_header
        self._key_id_header = config.key_id_header
        self._max_body = config.max_body_bytes
        self._max_entry = cache.max_entry_bytes
        self._lease_ms = cache.lease_ms
        self._prefix = config.redis.key_prefix
        self._upstream = config.upstream_url
        self._owns_client = False
        self.store: CacheStore | None = None
        if cache.enabled:
            if redis_client is None:
                redis_client = build_client(config.redis)
                self._owns_client = True
            self.store = CacheStore(
                redis_client, config.redis, cache, self.metrics, clock=clock, wall=wall
            )
        self.semantic: SemanticCache | None = None
        if self.store is not None and config.semantic is not None:
            self.semantic = SemanticCache(
                config, self.store, self.metrics, lambda: self._session, wall=wall
            )
        self._inflight: dict[str, asyncio.Future[Entry | None]] = {}
        self.audit = RequestAudit(config.audit, wall=wall)
        # Set on SIGTERM: /health answers 503 while requests in flight finish.
        self.stopping = False
        self._session: aiohttp.ClientSession | None = None
        self.app = web.Application(client_max_size=self._max_body + 1)
        self.app[GATEWAY_KEY] = self
        # HAProxy's health check of this listener; every other request is handled or passed on.
        self.app.router.add_get("/health", self._health)
        self.app.router.add_route("*", "/{tail:.*}", self.handle)
        self.app.on_startup.append(self._start)
        self.app.on_cleanup.append(self._close)

    # --- life cycle -----------------------------------------------------------------------

    async def _start(self, _app: web.Application) -> None:
        timeout = aiohttp.ClientTimeout(
            total=self.config.upstream_timeout_seconds,
            sock_connect=min(10.0, self.config.upstream_timeout_seconds),
        )
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=30),
            timeout=timeout,
            auto_decompress=False,
            skip_auto_headers=_SKIP_AUTO_HEADERS,
        )

    async def _close(self, _app: web.Application) -> None:
        if self.store is not None:
            await self.store.drain(timeout=max(1.0, self.config.redis.write_timeout_ms / 500))
            if self._owns_client:
                await close_client(self.store.client)
        if self._session is not None:
            await self._session.close()
        self.audit.close()

    async def _health(self, _request: web.Request) -> web.Response:
        return await health_response(self)

    async def drain(self) -> None:
        """Wait until background cache writes are done (tests and shutdown)."""
        if self.store is not None:
            await self.store.drain()

    # --- accounting -----------------------------------------------------------------------

    def _model_label(self, model: str | None, accepted: bool) -> str:
        if not model:
            return ""
        # Unknown names count as "other" unless the engine answered them: a client cannot
        # create label values at will.
        return model if accepted or model in self.config.models else OTHER_MODEL

    def _route_label(self, call: _Call, outcome: str) -> str:
        if outcome == m.HIT:
            return "cache"
        route = call.request.headers.get(self.config.route_header, "")
        return route if _ROUTE.match(route) else "unknown"

    def _account(
        self,
        call: _Call,
        outcome: str,
        usage: Any,
        source: str,
        status: int,
        answer: Any = None,
    ) -> None:
        """Count the request and write its audit record; `answer` is the parsed JSON answer."""
        accepted = source == "cache" or (source == "engine" and status < 400)
        model = self._model_label(call.model, accepted)
        route = self._route_label(call, outcome)
        self.metrics.requests.labels(call.tenant, model, outcome).inc()
        self.metrics.routes.labels(call.tenant, model, route).inc()
        if usage is not None:
            self.metrics.count_tokens(call.tenant, model, usage, source)
        seconds = time.perf_counter() - call.started
        self.metrics.request_duration.labels(outcome).observe(seconds)
        if self.audit.enabled:
            self._audit(call, outcome, route, usage, status, answer, seconds)

    def _audit(
        self,
        call: _Call,
        outcome: str,
        route: str,
        usage: Any,
        status: int,
        answer: Any,
        seconds: float,
    ) -> None:
        headers = call.request.headers
        usage = usage if isinstance(usage, dict) else {}
        record: dict[str, Any] = {
            "request_id": headers.get(self.config.request_id_header, ""),
            "tenant": call.tenant,
            "key_id": headers.get(self._key_id_header, ""),
            "method": call.request.method,
            "path": call.request.path,
            "model": call.model,
            "data_class": headers.get(self.config.data_class_header, ""),
            "route": route,
            "cache": outcome,
            "stream": call.stream,
            "status": status,
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
            "duration_ms": round(seconds * 1000, 3),
        }
        if call.similarity is not None:
            record["similarity"] = round(call.similarity, 4)
        user = self.audit.user(call.parsed)
        if user is not None:
            record["user"] = user
        content = None
        if self.audit.keeps_content(call.tenant):
            # A stream's text is spread over its events: only JSON answers are kept.
            content = {"request": request_content(call.parsed), "answer": answer_content(answer)}
        self.audit.write(record, content)

    def _refuse(self, call: _Call, status: int, message: str, code: str) -> web.Response:
        self._account(call, m.BYPASS, None, "refused", status)
        return web.Response(
            status=status,
            body=_error_body(message, code, "invalid_request_error"),
            headers={"Content-Type": "application/json", "Cache-Status": INVALID_REQUEST},
        )

    # --- the request handler --------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        call = _Call(request, request.headers.get(self._tenant_header, ""), time.perf_counter())
        if not call.tenant:
            return self._refuse(
                call, 400, f"missing the {self._tenant_header} header", "missing_tenant"
            )
        length = request.content_length
        if length is not None and length > self._max_body:
            return self._too_large(call)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._too_large(call)
        if len(body) > self._max_body:
            return self._too_large(call)
        call.body = body
        path = request.path
        if request.method != "POST" or path not in self._paths:
            return await self._forward(call, "onprem-llm; fwd=bypass; detail=path", m.BYPASS)
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return self._refuse(call, 400, "the request body is not valid JSON", "invalid_json")
        return await self._api(call, path, parsed)

    def _too_large(self, call: _Call) -> web.Response:
        return self._refuse(
            call,
            413,
            f"the request body is larger than {self._max_body} bytes",
            "request_too_large",
        )

    async def _api(self, call: _Call, path: str, parsed: Any) -> web.StreamResponse:
        call.api = True
        call.parsed = parsed
        if isinstance(parsed, dict):
            model = parsed.get("model")
            call.model = model if isinstance(model, str) else None
            call.stream = bool(parsed.get("stream"))
            self._rewrite_body(call, path, parsed)
        cache_control = parse_cache_control(call.request.headers.getall("Cache-Control", ()))
        if self.store is None:
            reason: str | None = "disabled"
        elif cache_control.no_store:
            reason = "no-store"
        else:
            reason = uncacheable_reason(path, parsed)
        if reason is not None:
            return await self._forward(call, f"onprem-llm; fwd=bypass; detail={reason}", m.BYPASS)
        assert self.store is not None and call.model is not None
        scope = call.tenant if self.config.cache.scope == "tenant" else SITE_SCOPE
        key_body = parsed
        if self.config.cache.cache_salt and "cache_salt" in parsed:
            # Replaced by the tenant's salt before forwarding: not part of the question.
            key_body = {name: value for name, value in parsed.items() if name != "cache_salt"}
        inputs = KeyInputs(
            scope=scope,
            path=path,
            model=call.model,
            revision=self.config.revision(call.model),
            stream=call.stream,
            excluded_fields=self._excluded,
        )
        key = inputs.key(key_body)
        store = self.store
        if not store.available:
            return await self._forward(call, CACHE_UNAVAILABLE, m.ERROR)
        if cache_control.no_cache:
            return await self._fill(call, key, "request", follow=False)
        started = time.perf_counter()
        try:
            entry = await store.lookup(key, call.stream)
        except CacheUnavailable:
            return await self._forward(call, CACHE_UNAVAILABLE, m.ERROR)
        finally:
            self.metrics.lookup_duration.observe(time.perf_counter() - started)
        if entry is None:
            semantic = self.semantic
            if semantic is not None and semantic.enabled_for(call.tenant, call.model):
                found = await self._semantic(call, semantic, inputs, key_body, cache_control)
                if isinstance(found, web.Response):
                    return found
                return await self._fill(call, key, f"miss; detail=semantic-{found}")
            return await self._fill(call, key, "miss")
        if cache_control.max_age is not None and entry.age(self._wall()) > cache_control.max_age:
            return await self._fill(call, key, "stale")
        return self._hit(call, entry)

    async def _semantic(
        self,
        call: _Call,
        semantic: SemanticCache,
        inputs: KeyInputs,
        body: dict[str, Any],
        cache_control: Any,
    ) -> web.Response | str:
        """A hit by meaning, or the miss reason (the answer of a miss is indexed later)."""
        assert call.model is not None and self.store is not None
        found = await semantic.lookup(
            tenant=call.tenant,
            inputs=inputs,
            body=body,
            requested=requested_threshold(call.request.headers.get(THRESHOLD_HEADER)),
        )
        result = found.result
        if result == SEMANTIC_HIT:
            assert found.digest is not None and found.set_key is not None
            key = CacheKey(inputs.scope, inputs.model, found.digest)
            try:
                entry = await self.store.lookup(key, call.stream)
            except CacheUnavailable:
                entry = None
            if entry is None:
                # Expired, purged or evicted since it was indexed: it leaves the set.
                self.store.spawn(semantic.remove(found.set_key, found.digest))
                result = SEMANTIC_STALE
            elif cache_control.max_age is not None and (
                entry.age(self._wall()) > cache_control.max_age
            ):
                result = SEMANTIC_STALE
            else:
                semantic.count(call.tenant, call.model, result)
                call.similarity = found.similarity
                request_id = call.request.headers.get(self.config.request_id_header, "")
                self.store.spawn(
                    semantic.remember_hit(
                        request_id,
                        found.set_key,
                        found.digest,
                        key.entry_key(self._prefix),
                        entry.remaining(self._wall()),
                    )
                )
                response = self._hit(call, entry, detail="semantic")
                response.headers[SIMILARITY_HEADER] = f"{found.similarity or 0.0:.4f}"
                return response
        semantic.count(call.tenant, call.model, result)
        call.semantic = found.pending
        return result

    def _rewrite_body(self, call: _Call, path: str, parsed: dict[str, Any]) -> None:
        """Set the tenant's cache_salt and ask for usage on streams; else forward as received."""
        changes: dict[str, Any] = {}
        if self.config.cache.cache_salt:
            changes["cache_salt"] = tenant_salt(call.tenant)
        if call.stream and not is_embeddings(path):
            options = parsed.get("stream_options")
            call.client_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            if not call.client_usage:
                base = options if isinstance(options, dict) else {}
                changes["stream_options"] = {**base, "include_usage": True}
                call.strip_usage = True
        if changes:
            call.body = json.dumps({**parsed, **changes}, separators=(",", ":")).encode()

    # --- hits -----------------------------------------------------------------------------

    def _hit(
        self, call: _Call, entry: Entry, *, collapsed: bool = False, detail: str = ""
    ) -> web.Response:
        now = self._wall()
        state = "hit; collapsed" if collapsed else "hit"
        headers = {
            "Content-Type": entry.content_type,
            "Cache-Status": f"onprem-llm; {state}; ttl={entry.remaining(now)}"
            + (f"; detail={detail}" if detail else ""),
            "Age": str(int(entry.age(now))),
        }
        body = entry.replay(call.client_usage)
        answer = None
        if entry.body is not None and self.audit.keeps_content(call.tenant):
            with contextlib.suppress(ValueError, RecursionError):
                answer = json.loads(body)
        self._account(call, m.HIT, entry.usage, "cache", 200, answer)
        return web.Response(status=200, body=body, headers=headers)

    # --- misses: single-flight and leases -------------------------------------------------

    async def _fill(
        self, call: _Call, key: CacheKey, fwd: str, *, follow: bool = True
    ) -> web.StreamResponse:
        """Forward a cacheable miss once per key: followers wait for the leader's answer."""
        name = key.entry_key(self._prefix)
        status = f"onprem-llm; fwd={fwd}"
        leader = self._inflight.get(name)
        if leader is not None:
            if follow:
                entry = await asyncio.shield(leader)
                if entry is not None:
                    return self._hit(call, entry, collapsed=True)
            return await self._forward(call, status, m.MISS, key=key)
        future: asyncio.Future[Entry | None] = asyncio.get_running_loop().create_future()
        self._inflight[name] = future
        try:
            if self._lease_ms:
                entry = await self._lease(call, key)
                if entry is not None:
                    future.set_result(entry)
                    return self._hit(call, entry, collapsed=True)
            return await self._forward(call, status, m.MISS, key=key, future=future)
        finally:
            if not future.done():
                future.set_result(None)
            if self._inflight.get(name) is future:
                del self._inflight[name]
            if call.lease is not None and self.store is not None:
                self.store.spawn(self.store.release_lease(key, call.lease))

    async def _lease(self, call: _Call, key: CacheKey) -> Entry | None:
        """Take the cross-gateway lease, or wait for the holder's entry (None: forward)."""
        store = self.store
        assert store is not None
        token = secrets.token_hex(16)
        try:
            if await store.acquire_lease(key, token, self._lease_ms):
                call.lease, call.lease_at = token, self._clock()
                return None
        except CacheUnavailable:
            return None
        deadline = self._clock() + self._lease_ms / 1000
        while (remaining := deadline - self._clock()) > 0:
            await asyncio.sleep(min(LEASE_POLL_SECONDS, remaining))
            try:
                # The holder stores the entry, then drops the lease: read in the other order,
                # so a lease seen gone means the entry (if any) is already there.
                held = await store.lease_held(key)
                entry = await store.lookup(key, call.stream)
                if entry is not None:
                    return entry
                if not held:
                    return None
            except CacheUnavailable:
                return None
        return None

    def _finish(self, call: _Call, key: CacheKey | None, entry: Entry | None) -> None:
        """After the answer: store the entry, then release the lease (in the background)."""
        store = self.store
        if store is None or key is None:
            return
        token, call.lease = call.lease, None
        if entry is not None and call.semantic is not None and self.semantic is not None:
            store.spawn(self.semantic.add(call.semantic, key.digest, entry.expires))
        if entry is None and token is None:
            return
        # Half the lease time: far from its expiry in Redis, so it is still ours.
        fresh = self._clock() - call.lease_at < self._lease_ms / 2000
        store.spawn(store.finish(key, entry, token, fresh))

    # --- forwarding -----------------------------------------------------------------------

    async def _forward(
        self,
        call: _Call,
        cache_status: str,
        outcome: str,
        *,
        key: CacheKey | None = None,
        future: asyncio.Future[Entry | None] | None = None,
    ) -> web.StreamResponse:
        request = call.request
        assert self._session is not None, "the gateway is not started"
        headers = _filter_headers(request.headers, _REQUEST_DROP)
        if call.api:
            # The answer is parsed (usage, storage): no compression from the engines.
            headers["Accept-Encoding"] = "identity"
        url = URL(self._upstream + request.raw_path, encoded=True)
        try:
            upstream = await self._session.request(
                request.method,
                url,
                data=call.body or None,
                headers=headers,
                allow_redirects=False,
            )
        except TimeoutError:
            return self._upstream_failed(call, cache_status, outcome, 504, "timed out")
        except aiohttp.ClientError as exc:
            return self._upstream_failed(call, cache_status, outcome, 502, _describe(exc))
        try:
            self.metrics.upstream_responses.labels(str(upstream.status)).inc()
            out = _filter_headers(upstream.headers, _RESPONSE_DROP)
            content_type = upstream.headers.get("Content-Type", "")
            if content_type.startswith("text/event-stream"):
                return await self._relay_stream(
                    call, upstream, out, cache_status, outcome, key, future
                )
            if not call.api:
                return await self._relay_raw(call, upstream, out, cache_status, outcome)
            try:
                body = await upstream.read()
            except TimeoutError:
                return self._upstream_failed(call, cache_status, outcome, 504, "timed out")
            except aiohttp.ClientError as exc:
                return self._upstream_failed(call, cache_status, outcome, 502, _describe(exc))
            return await self._answer_json(
                call, upstream, body, out, content_type, cache_status, outcome, key, future
            )
        finally:
            # A response not read to its end (client gone, upstream cut) must not be reused.
            if upstream.content.is_eof():
                upstream.release()
            else:
                upstream.close()

    def _upstream_failed(
        self, call: _Call, cache_status: str, outcome: str, status: int, reason: str
    ) -> web.Response:
        self.metrics.upstream_responses.labels("error").inc()
        log.warning(
            "upstream %s for tenant %s key %s: %s",
            "timeout" if status == 504 else "error",
            call.tenant,
            call.request.headers.get(self._key_id_header, "-"),
            reason,
        )
        self._account(call, outcome, None, "upstream", status)
        if status == 504:
            code, message = "upstream_timeout", "the model server did not answer in time"
        else:
            code, message = "upstream_unavailable", "the model server is unavailable"
        return web.Response(
            status=status,
            body=_error_body(message, code, "server_error"),
            headers={"Content-Type": "application/json", "Cache-Status": cache_status},
        )

    async def _answer_json(
        self,
        call: _Call,
        upstream: aiohttp.ClientResponse,
        body: bytes,
        headers: CIMultiDict[str],
        content_type: str,
        cache_status: str,
        outcome: str,
        key: CacheKey | None,
        future: asyncio.Future[Entry | None] | None,
    ) -> web.StreamResponse:
        parsed = None
        plain = upstream.headers.get("Content-Encoding", "identity").lower() == "identity"
        if plain and _is_json(content_type):
            with contextlib.suppress(ValueError, RecursionError):
                parsed = json.loads(body)
        usage = usage_of(parsed)
        entry = None
        if (
            key is not None
            and upstream.status == 200
            and not call.stream
            and isinstance(parsed, dict)
            and "error" not in parsed
            and len(body) <= self._max_entry
        ):
            now = self._wall()
            entry = Entry(now, now + self.config.cache.ttl_seconds, content_type, usage, body=body)
            cache_status += "; stored"
        if future is not None and not future.done():
            future.set_result(entry)
        headers["Cache-Status"] = cache_status
        response = web.Response(status=upstream.status, body=body, headers=headers)
        self._account(call, outcome, usage, "engine", upstream.status, parsed)
        if entry is not None or call.lease is not None:
            # Answer first, then write to Redis.
            with contextlib.suppress(ConnectionError):
                await response.prepare(call.request)
                await response.write_eof()
            self._finish(call, key, entry)
        return response

    async def _relay_raw(
        self,
        call: _Call,
        upstream: aiohttp.ClientResponse,
        headers: CIMultiDict[str],
        cache_status: str,
        outcome: str,
    ) -> web.StreamResponse:
        """Pass an answer through as it comes (paths the gateway does not interpret)."""
        headers["Cache-Status"] = cache_status
        response = web.StreamResponse(status=upstream.status, headers=headers)
        if upstream.content_length is not None:
            response.content_length = upstream.content_length
        await response.prepare(call.request)
        try:
            while chunk := await upstream.content.readany():
                await response.write(chunk)
        except (aiohttp.ClientError, TimeoutError, ConnectionError) as exc:
            _abort(call.request, exc)
            self._account(call, outcome, None, "engine", upstream.status)
            return response
        self._account(call, outcome, None, "engine", upstream.status)
        return response

    async def _relay_stream(
        self,
        call: _Call,
        upstream: aiohttp.ClientResponse,
        headers: CIMultiDict[str],
        cache_status: str,
        outcome: str,
        key: CacheKey | None,
        future: asyncio.Future[Entry | None] | None,
    ) -> web.StreamResponse:
        """Pass SSE events on as they come while keeping a copy; store only complete streams."""
        headers["Cache-Status"] = cache_status
        response = web.StreamResponse(status=upstream.status, headers=headers)
        await response.prepare(call.request)
        keep = key is not None and upstream.status == 200 and call.stream
        events: list[bytes] | None = [] if keep else None
        usage_events: list[int] = []
        size = 0
        done = False
        usage = None
        splitter = EventSplitter()
        failure: BaseException | None = None
        while True:
            try:
                chunk = await upstream.content.readany()
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = exc
                break
            if not chunk:
                break
            out = []
            for event in splitter.feed(chunk):
                send = True
                if is_done(event):
                    done = True
                elif b'"usage"' in event:
                    value = event_json(event)
                    usage = usage_of(value) or usage
                    if is_usage_only(value):
                        if events is not None:
                            usage_events.append(len(events))
                        send = not call.strip_usage
                if events is not None:
                    size += len(event)
                    if size > self._max_entry:
                        events = None
                    else:
                        events.append(event)
                if send:
                    out.append(event)
            if out:
                try:
                    await response.write(out[0] if len(out) == 1 else b"".join(out))
                except (ConnectionError, aiohttp.ClientError) as exc:
                    failure = exc
                    break
        if failure is None and splitter.rest():
            with contextlib.suppress(ConnectionError):
                await response.write(splitter.rest())
        entry = None
        if failure is None and done and events is not None:
            now = self._wall()
            entry = Entry(
                now,
                now + self.config.cache.ttl_seconds,
                upstream.headers.get("Content-Type", "text/event-stream"),
                usage,
                events=tuple(events),
                usage_events=tuple(usage_events),
            )
        if future is not None and not future.done():
            future.set_result(entry)
        self._account(call, outcome, usage, "engine", upstream.status)
        if failure is not None:
            _abort(call.request, failure)
        else:
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
        self._finish(call, key, entry)
        return response


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _abort(request: web.Request, exc: BaseException) -> None:
    """End a response that is already under way without a clean end: the client sees a cut."""
    if not isinstance(exc, ConnectionError):
        log.warning("stream from upstream ended early: %s", type(exc).__name__)
    transport = request.transport
    if transport is not None:
        transport.close()


# --- the metrics and health listener ----------------------------------------------------------


async def health_response(gateway: Gateway) -> web.Response:
    """200 while serving, 503 once stopping; the Redis state is only reported (the gateway
    serves without Redis)."""
    store = gateway.store
    if store is None:
        redis: dict[str, Any] = {"state": "disabled"}
    else:
        up = await store.ping()
        redis = {"state": "up" if up else "down", "skipping": not store.available}
        if store.last_error:
            redis["last_error"] = store.last_error
    if gateway.stopping:
        return web.json_response({"status": "stopping", "redis": redis}, status=503)
    return web.json_response({"status": "serving", "redis": redis})


def metrics_app(gateway: Gateway) -> web.Application:
    """GET /metrics (Prometheus) and GET /health."""

    async def metrics(_request: web.Request) -> web.Response:
        return web.Response(
            body=gateway.metrics.exposition(), headers={"Content-Type": m.CONTENT_TYPE}
        )

    async def health(_request: web.Request) -> web.Response:
        return await health_response(gateway)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    return app
