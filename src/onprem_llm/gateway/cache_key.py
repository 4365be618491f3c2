"""Cache keys: sha256 over the canonical JSON of everything that decides an answer.

The key covers the key version, the scope (the tenant, or "site" when all tenants share), the
path, model and model revision, the stream flag and the whole request body minus a short list of
excluded fields, so no sampling parameter can be forgotten. Redis keys carry the scope and model
in clear (URL-quoted) so an operator can purge one tenant or one model with SCAN.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

# Bump when the key's inputs or the entry format change meaning: old entries then simply miss.
KEY_VERSION = 1
SITE_SCOPE = "site"


def canonical_json(value: Any) -> str:
    """One text per JSON value: keys sorted, no spaces, non-ASCII kept as is."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@functools.lru_cache(maxsize=4096)
def _quote(text: str) -> str:
    return quote(text, safe="")


def glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so `text` matches only itself in SCAN MATCH."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)


@dataclass(frozen=True, slots=True)
class CacheKey:
    scope: str
    model: str
    digest: str

    def entry_key(self, prefix: str) -> str:
        return f"{prefix}cache:{_quote(self.scope)}:{_quote(self.model)}:{self.digest}"

    def lease_key(self, prefix: str) -> str:
        return f"{prefix}lease:{_quote(self.scope)}:{_quote(self.model)}:{self.digest}"


@dataclass(frozen=True, slots=True)
class KeyInputs:
    """What decides an answer besides the body: built once per request, so the exact key and
    the semantic cache's context digest are made from the same values."""

    scope: str
    path: str
    model: str
    revision: str
    stream: bool
    excluded_fields: Collection[str]

    def key(self, body: Mapping[str, Any]) -> CacheKey:
        """The cache key of this request with `body`, the parsed JSON object the client sent."""
        material = {
            "v": KEY_VERSION,
            "scope": self.scope,
            "path": self.path,
            "model": self.model,
            "revision": self.revision,
            "stream": self.stream,
            "body": {
                name: value for name, value in body.items() if name not in self.excluded_fields
            },
        }
        # surrogatepass: JSON may carry lone surrogates, which strict UTF-8 refuses.
        text = canonical_json(material).encode("utf-8", "surrogatepass")
        return CacheKey(self.scope, self.model, hashlib.sha256(text).hexdigest())


def entry_pattern(prefix: str, scope: str, model: str | None = None) -> str:
    """SCAN MATCH pattern for the entries of one scope, optionally of one model only."""
    model_part = glob_escape(_quote(model)) if model else "*"
    return f"{glob_escape(prefix)}cache:{glob_escape(_quote(scope))}:{model_part}:*"
