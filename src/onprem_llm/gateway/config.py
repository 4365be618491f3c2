"""The gateway's configuration: one JSON file written by the gateway role, validated at start.

Every check names the key (as a dotted path) and what was expected, so a bad file stops the
service with a message an operator can act on. Unknown keys are refused too: a misspelt key
would otherwise be silently ignored.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .audit import AuditConfig

DEFAULT_PATHS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
DEFAULT_EXCLUDED_FIELDS = ("user", "metadata", "stream_options", "store")


class ConfigError(ValueError):
    """A configuration value that is missing, of the wrong type or out of range."""


@dataclass(frozen=True)
class ServerTLS:
    """The certificate and key a TCP listener serves TLS with (PEM files, read again when they
    change)."""

    certificate: str
    private_key: str


@dataclass(frozen=True)
class Listen:
    """A TCP address (host and port), optionally with TLS, or a Unix socket path (with its file
    mode)."""

    host: str | None = None
    port: int | None = None
    unix: str | None = None
    mode: int = 0o660
    tls: ServerTLS | None = None

    def describe(self) -> str:
        return f"unix:{self.unix}" if self.unix else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class RedisHost:
    host: str
    port: int


@dataclass(frozen=True)
class RedisConfig:
    mode: str
    hosts: tuple[RedisHost, ...]
    sentinel_master: str
    sentinel_username: str | None
    sentinel_password: str | None
    username: str | None
    password: str | None
    tls: bool
    ca_file: str | None
    server_name: str | None
    db: int
    key_prefix: str
    lookup_budget_ms: int
    write_timeout_ms: int
    connect_timeout_ms: int
    retry_after_error_seconds: float


@dataclass(frozen=True)
class CacheConfig:
    enabled: bool
    ttl_seconds: int
    max_ttl_seconds: int
    max_entry_bytes: int
    scope: str
    paths: frozenset[str]
    excluded_fields: frozenset[str]
    lease_ms: int
    cache_salt: bool


@dataclass(frozen=True)
class SemanticTenant:
    """A tenant's semantic cache: the models it covers (empty: all) and its own threshold."""

    models: frozenset[str]
    threshold: float | None


@dataclass(frozen=True)
class SemanticConfig:
    embedding_model: str
    # HAProxy's loopback frontend routes on this header: the embedding model's backend.
    embedding_backend: str
    embedding_path: str
    backend_header: str
    dimensions: int
    timeout_ms: int
    threshold: float
    threshold_floor: float
    max_input_tokens: int
    max_input_chars: int
    multi_turn: bool
    candidates: int
    tenants: Mapping[str, SemanticTenant]


@dataclass(frozen=True)
class GatewayConfig:
    listen: Listen
    metrics_listen: Listen | None
    upstream_url: str
    upstream_timeout_seconds: float
    tenant_header: str
    key_id_header: str
    route_header: str
    max_body_bytes: int
    redis: RedisConfig
    cache: CacheConfig
    # Model name -> revision; part of the cache key so a new revision never serves old answers.
    models: Mapping[str, str]
    shutdown_grace_seconds: float
    data_class_header: str = "X-Onprem-Data-Class"
    request_id_header: str = "X-Onprem-Request-ID"
    audit: AuditConfig = field(default_factory=AuditConfig)
    semantic: SemanticConfig | None = None

    def revision(self, model: str) -> str:
        return self.models.get(model, "")


class _Section:
    """Reads one JSON object, checking each key; `done()` refuses keys nobody read."""

    def __init__(self, data: Any, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(f"{path or 'the configuration'}: expected a JSON object")
        self._data = data
        self._path = path
        self._seen: set[str] = set()

    def _name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def raw(self, key: str, default: Any = ...) -> Any:
        self._seen.add(key)
        if key not in self._data:
            if default is ...:
                raise ConfigError(f"{self._name(key)}: missing (required)")
            return default
        return self._data[key]

    def section(self, key: str, default: Any = ...) -> _Section:
        return _Section(self.raw(key, default), self._name(key))

    def string(self, key: str, default: Any = ..., *, nullable: bool = False) -> Any:
        value = self.raw(key, default)
        if value is None and nullable:
            return None
        if not isinstance(value, str) or not value:
            expected = "a non-empty string" + (" or null" if nullable else "")
            raise ConfigError(f"{self._name(key)}: expected {expected}, got {value!r}")
        return str(value)

    def boolean(self, key: str, default: Any = ...) -> bool:
        value = self.raw(key, default)
        if not isinstance(value, bool):
            raise ConfigError(f"{self._name(key)}: expected true or false, got {value!r}")
        return value

    def integer(
        self, key: str, default: Any = ..., *, minimum: int = 0, maximum: int | None = None
    ) -> int:
        value = self.raw(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int)
            or value < minimum
            or (maximum is not None and value > maximum)
        ):
            bound = f"{minimum}..{maximum}" if maximum is not None else f">= {minimum}"
            raise ConfigError(f"{self._name(key)}: expected an integer {bound}, got {value!r}")
        return int(value)

    def number(self, key: str, default: Any = ..., *, minimum: float = 0.0) -> float:
        value = self.raw(key, default)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value < minimum
        ):
            raise ConfigError(f"{self._name(key)}: expected a number >= {minimum}, got {value!r}")
        return float(value)

    def choice(self, key: str, choices: tuple[str, ...], default: Any = ...) -> str:
        value = self.raw(key, default)
        if value not in choices:
            expected = " or ".join(repr(c) for c in choices)
            raise ConfigError(f"{self._name(key)}: expected {expected}, got {value!r}")
        return str(value)

    def strings(self, key: str, default: Any = ...) -> tuple[str, ...]:
        value = self.raw(key, default)
        if not isinstance(value, list | tuple) or not all(
            isinstance(item, str) and item for item in value
        ):
            raise ConfigError(
                f"{self._name(key)}: expected a list of non-empty strings, got {value!r}"
            )
        return tuple(value)

    def done(self) -> None:
        unknown = sorted(set(self._data) - self._seen)
        if unknown:
            names = ", ".join(self._name(key) for key in unknown)
            raise ConfigError(f"{names}: unknown key (misspelt?)")


def _listen(section: _Section, key: str, *, nullable: bool = False) -> Listen | None:
    if nullable and section.raw(key, None) is None:
        return None
    listen = section.section(key)
    if "unix" in listen._data:
        if "host" in listen._data or "port" in listen._data:
            raise ConfigError(
                f"{listen._path}: expected either unix (a socket path) or host and port, not both"
            )
        path = listen.string("unix")
        if not path.startswith("/"):
            raise ConfigError(f"{listen._path}.unix: expected an absolute path, got {path!r}")
        mode_text = listen.string("mode", "0660")
        try:
            mode = int(mode_text, 8)
        except ValueError:
            mode = -1
        if not 0 <= mode <= 0o777:
            raise ConfigError(
                f"{listen._path}.mode: expected an octal file mode such as '0660', "
                f"got {mode_text!r}"
            )
        listen.done()
        return Listen(unix=path, mode=mode)
    host = listen.string("host")
    port = listen.integer("port", minimum=1, maximum=65535)
    tls = None
    if listen.raw("tls", None) is not None:
        section = listen.section("tls")
        files = {}
        for name in ("certificate", "private_key"):
            files[name] = section.string(name)
            if not files[name].startswith("/"):
                raise ConfigError(
                    f"{section._name(name)}: expected an absolute path, got {files[name]!r}"
                )
        section.done()
        tls = ServerTLS(**files)
    listen.done()
    return Listen(host=host, port=port, tls=tls)


def _secret_file(section: _Section, key: str) -> str | None:
    path = section.string(key, None, nullable=True)
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        name = f"{section._path}.{key}"
        reason = getattr(exc, "strerror", None) or exc
        raise ConfigError(f"{name}: cannot read {path}: {reason}") from None


def _redis(section: _Section, cache_enabled: bool) -> RedisConfig:
    mode = section.choice("mode", ("standalone", "sentinel"), "standalone")
    hosts_raw = section.raw("hosts", [])
    if not isinstance(hosts_raw, list) or (cache_enabled and not hosts_raw):
        raise ConfigError(
            f"{section._name('hosts')}: expected a non-empty list of {{host, port}} objects"
        )
    hosts = []
    for index, item in enumerate(hosts_raw):
        host = _Section(item, f"{section._name('hosts')}[{index}]")
        hosts.append(
            RedisHost(
                host.string("host"),
                host.integer(
                    "port", 26379 if mode == "sentinel" else 6379, minimum=1, maximum=65535
                ),
            )
        )
        host.done()
    if mode == "standalone" and len(hosts) > 1:
        raise ConfigError(
            f"{section._name('hosts')}: expected one host in standalone mode "
            "(several hosts are sentinels: mode sentinel)"
        )
    tls = section.boolean("tls", False)
    ca_file = section.string("ca_file", None, nullable=True)
    if ca_file is not None and not Path(ca_file).is_file():
        raise ConfigError(f"{section._name('ca_file')}: {ca_file} is not a readable file")
    lookup = section.integer("lookup_budget_ms", 20, minimum=1, maximum=60000)
    config = RedisConfig(
        mode=mode,
        hosts=tuple(hosts),
        sentinel_master=section.string("sentinel_master", "onprem-llm-cache"),
        sentinel_username=section.string("sentinel_username", None, nullable=True),
        sentinel_password=_secret_file(section, "sentinel_password_file"),
        username=section.string("username", None, nullable=True),
        password=_secret_file(section, "password_file"),
        tls=tls,
        ca_file=ca_file,
        server_name=section.string("server_name", None, nullable=True),
        db=section.integer("db", 0, maximum=15),
        key_prefix=section.string("key_prefix", "onprem-llm:"),
        lookup_budget_ms=lookup,
        write_timeout_ms=section.integer("write_timeout_ms", 200, minimum=1, maximum=60000),
        connect_timeout_ms=section.integer("connect_timeout_ms", 200, minimum=1, maximum=60000),
        retry_after_error_seconds=section.number("retry_after_error_seconds", 1),
    )
    section.done()
    return config


def _cache(section: _Section) -> CacheConfig:
    ttl = section.integer("ttl_seconds", 3600, minimum=1)
    max_ttl = section.integer("max_ttl_seconds", 86400, minimum=1)
    if ttl > max_ttl:
        raise ConfigError(
            f"{section._name('ttl_seconds')}: expected at most cache.max_ttl_seconds "
            f"({max_ttl}), got {ttl}"
        )
    paths = section.strings("paths", DEFAULT_PATHS)
    for path in paths:
        if not path.startswith("/"):
            raise ConfigError(
                f"{section._name('paths')}: expected paths starting with /, got {path!r}"
            )
    config = CacheConfig(
        enabled=section.boolean("enabled", True),
        ttl_seconds=ttl,
        max_ttl_seconds=max_ttl,
        max_entry_bytes=section.integer("max_entry_bytes", 1048576, minimum=1),
        scope=section.choice("scope", ("tenant", "site"), "tenant"),
        paths=frozenset(paths),
        excluded_fields=frozenset(section.strings("excluded_fields", DEFAULT_EXCLUDED_FIELDS)),
        lease_ms=section.integer("lease_ms", 30000, minimum=0),
        cache_salt=section.boolean("cache_salt", False),
    )
    section.done()
    return config


def _similarity(section: _Section, key: str, default: Any = ...) -> float:
    value = section.raw(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not 0 < value <= 1
    ):
        raise ConfigError(
            f"{section._name(key)}: expected a cosine similarity above 0 and at most 1, "
            f"got {value!r}"
        )
    return float(value)


def _semantic(section: _Section, cache: CacheConfig) -> SemanticConfig | None:
    """The semantic cache, or None when no tenant has it (the section may then be empty)."""
    tenants_section = section.section("tenants", {})
    if not tenants_section._data:
        # Off: the other settings may be written but are not used.
        return None
    if not cache.enabled:
        raise ConfigError(
            f"{section._name('tenants')}: the semantic cache answers from the exact cache's "
            "entries: it needs cache.enabled true"
        )
    floor = _similarity(section, "threshold_floor", 0.95)
    threshold = _similarity(section, "threshold", 0.95)
    if threshold < floor:
        raise ConfigError(
            f"{section._name('threshold')}: expected at least "
            f"{section._name('threshold_floor')} ({floor}), got {threshold}"
        )
    tenants: dict[str, SemanticTenant] = {}
    for name in list(tenants_section._data):
        tenant = tenants_section.section(name)
        own = None
        if tenant.raw("threshold", None) is not None:
            own = _similarity(tenant, "threshold")
            if own < floor:
                raise ConfigError(
                    f"{tenant._name('threshold')}: a tenant may raise the threshold, not lower "
                    f"it below {section._name('threshold_floor')} ({floor}); got {own}"
                )
        tenants[name] = SemanticTenant(frozenset(tenant.strings("models", ())), own)
        tenant.done()
    path = section.string("embedding_path", "/v1/embeddings")
    if not path.startswith("/"):
        raise ConfigError(f"{section._name('embedding_path')}: expected a path starting with /")
    max_tokens = section.integer("max_input_tokens", 256, minimum=1, maximum=65536)
    config = SemanticConfig(
        embedding_model=section.string("embedding_model"),
        embedding_backend=section.string("embedding_backend"),
        embedding_path=path,
        backend_header=section.string("backend_header", "X-Onprem-Backend"),
        dimensions=section.integer("dimensions", minimum=1, maximum=65536),
        timeout_ms=section.integer("timeout_ms", 100, minimum=1, maximum=60000),
        threshold=threshold,
        threshold_floor=floor,
        max_input_tokens=max_tokens,
        max_input_chars=section.integer("max_input_chars", max_tokens * 16, minimum=1),
        multi_turn=section.boolean("multi_turn", False),
        candidates=section.integer("candidates", 4, minimum=1, maximum=100),
        tenants=tenants,
    )
    section.done()
    return config


def _models(section: _Section) -> dict[str, str]:
    models = {}
    for name in list(section._data):
        model = section.section(name)
        revision = model.raw("revision", "")
        if revision is None:
            revision = ""
        if not isinstance(revision, str):
            raise ConfigError(f"{model._path}.revision: expected a string, got {revision!r}")
        models[name] = revision
        # Other per-model settings belong to other services; only the revision is read here.
    return models


def _audit_path(section: _Section, key: str) -> str | None:
    path = section.raw(key, None)
    if path is not None and (not isinstance(path, str) or not path.startswith("/")):
        raise ConfigError(f"{section._name(key)}: expected an absolute path or null, got {path!r}")
    return path


def _audit(section: _Section) -> AuditConfig:
    path = _audit_path(section, "path")
    content_path = _audit_path(section, "content_path")
    key_file = _audit_path(section, "pseudonymisation_key_file")
    tenants = frozenset(section.strings("content_tenants", ()))
    if tenants and key_file is None:
        raise ConfigError(
            f"{section._name('pseudonymisation_key_file')}: required when "
            f"{section._name('content_tenants')} is not empty (user identifiers are pseudonymised)"
        )
    if tenants and (path is None or content_path is None):
        raise ConfigError(
            f"{section._name('content_tenants')}: content logging needs {section._name('path')} "
            f"and {section._name('content_path')}"
        )
    if content_path is not None and content_path == path:
        raise ConfigError(
            f"{section._name('content_path')}: must differ from {section._name('path')} (content "
            "is kept for its own retention)"
        )
    section.done()
    return AuditConfig(
        path=path,
        content_path=content_path,
        content_tenants=tenants,
        pseudonymisation_key_file=key_file,
    )


def parse_config(data: Any) -> GatewayConfig:
    """Validate a parsed configuration; raises ConfigError naming the first bad key."""
    root = _Section(data, "")
    listen = _listen(root, "listen")
    assert listen is not None
    metrics_listen = _listen(root, "metrics_listen", nullable=True)
    upstream_url = root.string("upstream_url")
    parts = urlsplit(upstream_url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ConfigError(
            f"upstream_url: expected an http(s) URL such as http://127.0.0.1:8481, "
            f"got {upstream_url!r}"
        )
    cache = _cache(root.section("cache", {}))
    config = GatewayConfig(
        listen=listen,
        metrics_listen=metrics_listen,
        upstream_url=upstream_url.rstrip("/"),
        upstream_timeout_seconds=root.number("upstream_timeout_seconds", 600, minimum=1),
        tenant_header=root.string("tenant_header", "X-Tenant-ID"),
        key_id_header=root.string("key_id_header", "X-API-Key-ID"),
        route_header=root.string("route_header", "X-Onprem-Route"),
        max_body_bytes=root.integer("max_body_bytes", 1048576, minimum=1),
        redis=_redis(root.section("redis", {}), cache.enabled),
        cache=cache,
        models=_models(root.section("models", {})),
        shutdown_grace_seconds=root.number("shutdown_grace_seconds", 10),
        data_class_header=root.string("data_class_header", "X-Onprem-Data-Class"),
        request_id_header=root.string("request_id_header", "X-Onprem-Request-ID"),
        audit=_audit(root.section("audit", {})),
        semantic=_semantic(root.section("semantic", {}), cache),
    )
    root.done()
    return config


def load_config(path: str | Path) -> GatewayConfig:
    """Read and validate the configuration file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{path}: not valid JSON: {exc}") from None
    return parse_config(data)
