"""What may be cached: the client's Cache-Control and the determinism of a request.

Only requests whose answer is reproducible are cached: temperature 0 or a fixed integer seed
(embeddings always), one choice (`n` and `best_of` absent or 1), a JSON object with a string
`model`. Everything else is forwarded as a bypass with a reason for the Cache-Status header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# Bypass reasons, shown as Cache-Status `detail=`.
NOT_DETERMINISTIC = "not-deterministic"
NOT_CACHEABLE = "not-cacheable"

_DIRECTIVE = re.compile(r'([^,=\s]+)(?:\s*=\s*("(?:[^"\\]|\\.)*"?|[^,]*))?')


@dataclass(frozen=True, slots=True)
class CacheControl:
    """The request directives the gateway honours; unknown ones are ignored."""

    no_cache: bool = False
    no_store: bool = False
    max_age: int | None = None


NO_DIRECTIVES = CacheControl()


def parse_cache_control(values: Iterable[str]) -> CacheControl:
    """Parse every Cache-Control request header leniently (case, spaces, quoted values).

    `no-cache`: skip the lookup but store the answer; `no-store`: neither look up nor store;
    `max-age=N`: accept an entry at most N seconds old (the smallest N when repeated). A
    malformed max-age is ignored rather than refused.
    """
    no_cache = no_store = False
    max_age: int | None = None
    for value in values:
        for match in _DIRECTIVE.finditer(value):
            name = match.group(1).lower()
            if name == "no-cache":
                no_cache = True
            elif name == "no-store":
                no_store = True
            elif name == "max-age" and match.group(2) is not None:
                argument = match.group(2).strip()
                if argument.startswith('"'):
                    argument = argument.strip('"').strip()
                if argument.isascii() and argument.isdigit():
                    seconds = int(argument)
                    max_age = seconds if max_age is None else min(max_age, seconds)
    if not (no_cache or no_store or max_age is not None):
        return NO_DIRECTIVES
    return CacheControl(no_cache=no_cache, no_store=no_store, max_age=max_age)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_embeddings(path: str) -> bool:
    return path.endswith("/embeddings")


def uncacheable_reason(path: str, body: Any) -> str | None:
    """None when the request may be cached, else the bypass reason."""
    if not isinstance(body, dict) or not isinstance(body.get("model"), str):
        return NOT_CACHEABLE
    for name in ("n", "best_of"):
        value = body.get(name)
        if value is not None and not (_is_number(value) and value == 1):
            return NOT_DETERMINISTIC
    if is_embeddings(path):
        return None
    temperature = body.get("temperature")
    if _is_number(temperature) and temperature == 0:
        return None
    seed = body.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        return None
    return NOT_DETERMINISTIC
