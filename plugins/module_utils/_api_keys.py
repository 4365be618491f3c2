"""API keys of the gateway: validation and the sha256 -> tenant map HAProxy reads.

Pure Python so the same code serves the filter plugin and its unit tests. Keys are never
returned or put in an error message; only their hashes leave this module.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any

# Tenant ids end up in HAProxy map files, access logs and headers: one word, no spaces.
_TENANT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
# Keys are sent as bearer tokens: printable ASCII without spaces.
_KEY_RE = re.compile(r"^[\x21-\x7e]+$")
DEFAULT_MIN_LENGTH = 32


class ApiKeyError(ValueError):
    """An API key mapping that cannot be used."""


def key_hash(key: str) -> str:
    """Return the lowercase hex sha256 of a key, as HAProxy computes it."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _keys_of(tenant: str, value: Any, where: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)) and value and all(isinstance(k, str) for k in value):
        return list(value)
    raise ApiKeyError(
        f"{where}: tenant {tenant!r} must map to a key (a string) or a non-empty list of keys"
    )


def hash_api_keys(
    keys_by_tenant: Any, variable: str, min_length: int = DEFAULT_MIN_LENGTH
) -> dict[str, str]:
    """Validate ``{tenant: key or [keys]}`` and return ``{sha256hex: tenant}``.

    Every error names ``variable`` and the tenant, never the key itself.
    """
    if isinstance(min_length, bool) or not isinstance(min_length, int) or min_length < 16:
        raise ApiKeyError(f"minimum key length must be an integer >= 16, got {min_length!r}")
    if not isinstance(keys_by_tenant, Mapping):
        kind = type(keys_by_tenant).__name__
        raise ApiKeyError(f"{variable}: expected a mapping of tenant to API key, got {kind}")
    hashes: dict[str, str] = {}
    for tenant in sorted(keys_by_tenant, key=str):
        if not isinstance(tenant, str) or not _TENANT_RE.match(tenant):
            raise ApiKeyError(
                f"{variable}: tenant {tenant!r} must be 1-63 letters, digits, '.', '_' or '-'"
            )
        keys = _keys_of(tenant, keys_by_tenant[tenant], variable)
        for index, key in enumerate(keys):
            where = f"{variable}.{tenant}" + (f"[{index}]" if len(keys) > 1 else "")
            if len(key) < min_length:
                raise ApiKeyError(
                    f"{where}: API key is {len(key)} characters long, "
                    f"expected at least {min_length}"
                )
            if not _KEY_RE.match(key):
                raise ApiKeyError(f"{where}: API key must be printable ASCII without spaces")
            digest = key_hash(key)
            if digest in hashes:
                raise ApiKeyError(
                    f"{where}: the same API key is already given to tenant {hashes[digest]!r}"
                )
            hashes[digest] = tenant
    return hashes


def map_lines(hashes: Mapping[str, str]) -> list[str]:
    """Return HAProxy map lines ``<sha256hex> <tenant>``, sorted so that output is stable."""
    return [f"{digest} {tenant}" for digest, tenant in sorted(hashes.items())]


def api_key_map(keys_by_tenant: Any, variable: str, min_length: int = DEFAULT_MIN_LENGTH) -> str:
    """Return the content of the HAProxy API key map (one line per key, trailing newline)."""
    lines = map_lines(hash_api_keys(keys_by_tenant, variable, min_length))
    return "".join(line + "\n" for line in lines)
