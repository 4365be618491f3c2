"""The response cache in Redis: entries, leases, and a client that fails open.

Every call on the request path is bounded by a budget (`asyncio.wait_for`). The Redis command
itself runs in a shielded task: an abandoned command is left to finish (or to hit the client's
socket timeout, which drops its connection) instead of being cancelled mid-reply. Some
redis-py releases put a connection whose command was cancelled back into the pool with the
reply unread, so the next command could read it (CVE-2023-28858). As a second guard every entry
holds its own key digest and an entry for another key is refused.

After an error the store is skipped for `retry_after_error_seconds` (a circuit breaker), so a
Redis outage costs one failed call per interval rather than one connection attempt per request.
Only the commands of the cache user's ACL are used: GET, SET, DEL, EXISTS and PING here (SET
and DEL of one answer go in one pipeline), plus what redis-py sends on connect: AUTH or HELLO,
CLIENT SETNAME and, from redis-py 5, CLIENT SETINFO (its errors are ignored). SELECT is sent
only for a `redis.db` other than 0, which the ACL would then have to allow.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.sentinel import (
    Sentinel,
    SentinelManagedConnection,
    SentinelManagedSSLConnection,
)

from .cache_key import CacheKey
from .config import CacheConfig, RedisConfig
from .metrics import GatewayMetrics

log = logging.getLogger("onprem_llm.gateway.cache")

ENTRY_FORMAT = 1
CLIENT_NAME = "onprem-llm-gateway"


class CacheUnavailable(Exception):
    """Redis failed, timed out or is skipped after a recent failure."""


class EntryError(ValueError):
    """A stored value that is not an entry of this format for this key."""


@dataclass(slots=True)
class Entry:
    """One cached answer: a JSON body, or the raw SSE events of a complete stream."""

    created: float
    expires: float
    content_type: str
    usage: dict[str, Any] | None
    body: bytes | None = None
    events: tuple[bytes, ...] | None = None
    # Indexes of the usage-only chunks in `events`, replayed only to clients that asked.
    usage_events: tuple[int, ...] = ()

    def age(self, now: float) -> float:
        return max(0.0, now - self.created)

    def remaining(self, now: float) -> int:
        return max(0, math.floor(self.expires - now))

    def size(self) -> int:
        if self.body is not None:
            return len(self.body)
        return sum(len(event) for event in self.events or ())

    def replay(self, include_usage: bool) -> bytes:
        """The body of a hit: the JSON body, or the stream's events (usage chunk on request)."""
        if self.body is not None:
            return self.body
        events = self.events or ()
        if include_usage or not self.usage_events:
            return b"".join(events)
        skip = set(self.usage_events)
        return b"".join(event for index, event in enumerate(events) if index not in skip)

    def encode(self, digest: str) -> bytes:
        """Versioned JSON; raises UnicodeDecodeError for a body that is not UTF-8."""
        value: dict[str, Any] = {
            "format": ENTRY_FORMAT,
            "key": digest,
            "created": self.created,
            "expires": self.expires,
            "content_type": self.content_type,
            "usage": self.usage,
        }
        if self.events is not None:
            value["events"] = [event.decode("utf-8") for event in self.events]
            value["usage_events"] = list(self.usage_events)
        else:
            value["body"] = (self.body or b"").decode("utf-8")
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    @classmethod
    def decode(cls, raw: Any, digest: str, stream: bool) -> Entry:
        """Parse and check a stored value; raises EntryError for anything unexpected."""
        if not isinstance(raw, bytes | str):
            raise EntryError(f"value of type {type(raw).__name__}")
        try:
            value = json.loads(raw)
        except ValueError:
            raise EntryError("not JSON") from None
        if not isinstance(value, dict) or value.get("format") != ENTRY_FORMAT:
            raise EntryError("unknown format")
        if value.get("key") != digest:
            raise EntryError("entry of another key")
        created, expires = value.get("created"), value.get("expires")
        content_type, usage = value.get("content_type"), value.get("usage")
        if not (
            _is_number(created)
            and _is_number(expires)
            and isinstance(content_type, str)
            and (usage is None or isinstance(usage, dict))
        ):
            raise EntryError("bad fields")
        created, expires = cast(float, created), cast(float, expires)
        if stream:
            events, usage_events = value.get("events"), value.get("usage_events")
            if not (
                isinstance(events, list)
                and events
                and all(isinstance(event, str) for event in events)
                and isinstance(usage_events, list)
                and all(
                    isinstance(i, int) and not isinstance(i, bool) and 0 <= i < len(events)
                    for i in usage_events
                )
            ):
                raise EntryError("bad events")
            return cls(
                created,
                expires,
                content_type,
                usage,
                events=tuple(event.encode("utf-8") for event in events),
                usage_events=tuple(usage_events),
            )
        body = value.get("body")
        if not isinstance(body, str):
            raise EntryError("bad body")
        return cls(created, expires, content_type, usage, body=body.encode("utf-8"))


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# --- Redis clients ------------------------------------------------------------------------


class _ServerNameContext(ssl.SSLContext):
    """Checks the server certificate against a fixed name instead of the address dialled."""

    server_name = ""

    def wrap_bio(
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | bytes | None = None,
        session: ssl.SSLSession | None = None,
    ) -> ssl.SSLObject:
        return super().wrap_bio(
            incoming,
            outgoing,
            server_side=server_side,
            server_hostname=self.server_name,
            session=session,
        )


def tls_context(cfg: RedisConfig) -> ssl.SSLContext:
    """Verify the server against ca_file (or the system store) and check its name."""
    context_class = _ServerNameContext if cfg.server_name else ssl.SSLContext
    context = context_class(ssl.PROTOCOL_TLS_CLIENT)
    if cfg.server_name:
        context.server_name = cfg.server_name  # type: ignore[attr-defined]
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.verify_mode = ssl.CERT_REQUIRED
    context.check_hostname = True
    if cfg.ca_file:
        context.load_verify_locations(cafile=cfg.ca_file)
    else:
        context.load_default_certs()
    return context


class _TLSConnection(SSLConnection):
    """redis-py's TLS connection with a context built here (same code on redis-py 4.3 to 8)."""

    def __init__(self, *, tls_context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ssl_context.context = tls_context


class _SentinelTLSConnection(SentinelManagedSSLConnection):
    def __init__(self, *, tls_context: ssl.SSLContext, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # type: ignore[no-untyped-call]
        self.ssl_context.context = tls_context


def build_client(cfg: RedisConfig, *, socket_timeout: float | None = None) -> Redis:
    """A client for the primary: the one host, or the master the sentinels name."""
    if socket_timeout is None:
        # Abandoned commands finish in the background; this bounds how long they may take.
        slowest = max(cfg.lookup_budget_ms, cfg.write_timeout_ms, cfg.connect_timeout_ms)
        socket_timeout = max(1.0, 5 * slowest / 1000)
    connect_timeout = cfg.connect_timeout_ms / 1000
    kwargs: dict[str, Any] = {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": connect_timeout,
        "client_name": CLIENT_NAME,
    }
    context = tls_context(cfg) if cfg.tls else None
    if context is not None:
        kwargs["tls_context"] = context
        # Consulted by redis-py only when it builds its own context, which it no longer does.
        kwargs["ssl_cert_reqs"] = "required"
        kwargs["ssl_check_hostname"] = True
    primary: dict[str, Any] = {"db": cfg.db, "username": cfg.username, "password": cfg.password}
    if cfg.mode == "standalone":
        host = cfg.hosts[0]
        pool = ConnectionPool(
            connection_class=_TLSConnection if context is not None else Connection,
            host=host.host,
            port=host.port,
            **primary,
            **kwargs,
        )
        return Redis(connection_pool=pool)
    sentinel = Sentinel([])
    sentinel.sentinels = [
        Redis(
            connection_pool=ConnectionPool(
                connection_class=_TLSConnection if context is not None else Connection,
                host=host.host,
                port=host.port,
                username=cfg.sentinel_username,
                password=cfg.sentinel_password,
                **kwargs,
            )
        )
        for host in cfg.hosts
    ]
    connection_class = _SentinelTLSConnection if context is not None else SentinelManagedConnection
    client: Redis = sentinel.master_for(
        cfg.sentinel_master, connection_class=connection_class, **primary, **kwargs
    )
    client._onprem_llm_sentinel = sentinel  # type: ignore[attr-defined]
    return client


async def close_client(client: Any) -> None:
    """Close a client and its pools (pools handed to Redis() are not closed by it)."""
    clients = [client, *getattr(getattr(client, "_onprem_llm_sentinel", None), "sentinels", [])]
    for item in clients:
        try:
            close = getattr(item, "aclose", None) or item.close
            await close()
            pool = getattr(item, "connection_pool", None)
            if pool is not None:
                await pool.disconnect()
        except Exception as exc:
            log.debug("closing the Redis client: %s", exc)


# --- the store ----------------------------------------------------------------------------


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class CacheStore:
    """Entries and leases in Redis, failing open: errors become CacheUnavailable."""

    def __init__(
        self,
        client: Any,
        redis: RedisConfig,
        cache: CacheConfig,
        metrics: GatewayMetrics,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self._prefix = redis.key_prefix
        self._budget = redis.lookup_budget_ms / 1000
        self._write_timeout = redis.write_timeout_ms / 1000
        self._connect_timeout = redis.connect_timeout_ms / 1000
        self._retry_after = redis.retry_after_error_seconds
        self._ttl = cache.ttl_seconds
        self._max_ttl = cache.max_ttl_seconds
        self._metrics = metrics
        self._clock = clock
        self.wall = wall
        self._down_until = 0.0
        self.last_error: str | None = None
        self._tasks: set[asyncio.Future[Any]] = set()

    @property
    def available(self) -> bool:
        """False while the breaker is open after an error."""
        return self._clock() >= self._down_until

    def _failed(self, operation: str, reason: str) -> None:
        self._metrics.cache_errors.labels(operation).inc()
        self._down_until = self._clock() + self._retry_after
        self.last_error = reason
        log.warning(
            "cache %s failed, Redis skipped for %gs: %s", operation, self._retry_after, reason
        )

    def _keep(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: an abandoned command's error is already counted

    async def _shielded(self, command: Callable[[], Awaitable[Any]], timeout: float) -> Any:
        """Wait up to `timeout` for a command that is never cancelled (see the module doc)."""
        task = asyncio.ensure_future(command())
        self._keep(task)
        return await asyncio.wait_for(asyncio.shield(task), timeout)

    async def _call(
        self, operation: str, command: Callable[[], Awaitable[Any]], timeout: float
    ) -> Any:
        if not self.available:
            raise CacheUnavailable("skipped after a recent error")
        try:
            return await self._shielded(command, timeout)
        except asyncio.CancelledError:
            raise
        except TimeoutError:
            reason = f"no answer within {timeout * 1000:g} ms"
        except Exception as exc:
            reason = _describe(exc)
        self._failed(operation, reason)
        raise CacheUnavailable(reason)

    async def lookup(self, key: CacheKey, stream: bool) -> Entry | None:
        """The entry, or None; a value that is not a valid entry is deleted and missed."""
        name = key.entry_key(self._prefix)
        raw = await self._call("lookup", lambda: self.client.get(name), self._budget)
        if raw is None:
            return None
        try:
            entry = Entry.decode(raw, key.digest, stream)
            if entry.age(self.wall()) > self._max_ttl:
                raise EntryError("older than cache.max_ttl_seconds")
        except EntryError as exc:
            self._metrics.cache_errors.labels("decode").inc()
            log.warning("cache entry refused and deleted: %s", exc)
            self.spawn(self._delete(name))
            return None
        return entry

    async def _delete(self, name: str) -> None:
        with contextlib.suppress(CacheUnavailable):
            await self._call("store", lambda: self.client.delete(name), self._write_timeout)

    async def store(self, key: CacheKey, entry: Entry) -> bool:
        """Write an entry with the fixed TTL; False when it was not written."""
        try:
            payload = entry.encode(key.digest)
        except UnicodeDecodeError:
            return False
        return await self._set(key, payload)

    async def _set(self, key: CacheKey, payload: bytes) -> bool:
        name = key.entry_key(self._prefix)
        try:
            await self._call(
                "store",
                lambda: self.client.set(name, payload, ex=self._ttl),
                self._write_timeout,
            )
        except CacheUnavailable:
            return False
        return True

    async def finish(
        self, key: CacheKey, entry: Entry | None, token: str | None, lease_fresh: bool
    ) -> None:
        """After an answer: store its entry and drop our lease, in one round trip when the
        lease is young enough to be certainly ours (else GET, compare, DEL)."""
        payload = None
        if entry is not None:
            with contextlib.suppress(UnicodeDecodeError):
                payload = entry.encode(key.digest)
        if token is not None and not lease_fresh:
            if payload is not None:
                await self._set(key, payload)
            await self.release_lease(key, token)
            return
        name, lease = key.entry_key(self._prefix), key.lease_key(self._prefix)
        if payload is not None and token is not None:

            def command() -> Awaitable[Any]:
                pipe = self.client.pipeline(transaction=False)
                pipe.set(name, payload, ex=self._ttl)
                pipe.delete(lease)
                return cast(Awaitable[Any], pipe.execute())

            operation = "store"
        elif payload is not None:
            await self._set(key, payload)
            return
        elif token is not None:

            def command() -> Awaitable[Any]:
                return cast(Awaitable[Any], self.client.delete(lease))

            operation = "lease"
        else:
            return
        with contextlib.suppress(CacheUnavailable):
            await self._call(operation, command, self._write_timeout)

    async def acquire_lease(self, key: CacheKey, token: str, lease_ms: int) -> bool:
        name = key.lease_key(self._prefix)
        result = await self._call(
            "lease", lambda: self.client.set(name, token, nx=True, px=lease_ms), self._budget
        )
        return bool(result)

    async def lease_held(self, key: CacheKey) -> bool:
        name = key.lease_key(self._prefix)
        return bool(await self._call("lease", lambda: self.client.exists(name), self._budget))

    async def release_lease(self, key: CacheKey, token: str) -> None:
        """Delete the lease if it is still ours (GET then DEL: no scripts in the ACL)."""
        name = key.lease_key(self._prefix)
        try:
            holder = await self._call("lease", lambda: self.client.get(name), self._write_timeout)
            if holder is not None and holder in (token, token.encode()):
                await self._call("lease", lambda: self.client.delete(name), self._write_timeout)
        except CacheUnavailable:
            pass

    async def ping(self) -> bool:
        """For /health: one PING, not counted as an error and not tripping the breaker."""
        try:
            return bool(await self._shielded(self.client.ping, self._connect_timeout * 2))
        except asyncio.CancelledError:
            raise
        except Exception:
            return False

    def spawn(self, coroutine: Awaitable[Any]) -> None:
        """Run a write in the background (never delaying an answer)."""
        self._keep(asyncio.ensure_future(coroutine))

    async def drain(self, timeout: float | None = None) -> None:
        """Wait for background writes and abandoned commands (at shutdown, and in tests)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._tasks:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return
            await asyncio.wait(set(self._tasks), timeout=remaining)
