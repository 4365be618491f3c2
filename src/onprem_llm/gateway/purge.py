"""Purge cached answers of one tenant (optionally one model, optionally only old ones).

SCAN MATCH on the tenant's (and model's) key prefix, GET for the age when asked, UNLINK in
batches: only commands of the cache user's ACL. Entries are found by the scope and model in
their key, never by content.
"""

from __future__ import annotations

import json
import time
from typing import Any

from .cache_key import entry_pattern

SCAN_COUNT = 1000
UNLINK_BATCH = 500


def _created(raw: Any) -> float | None:
    """The entry's store time, or None for a value that is not a readable entry."""
    try:
        value = json.loads(raw)
    except (TypeError, ValueError):
        return None
    created = value.get("created") if isinstance(value, dict) else None
    if isinstance(created, int | float) and not isinstance(created, bool):
        return float(created)
    return None


async def purge(
    client: Any,
    *,
    prefix: str,
    scope: str,
    model: str | None = None,
    older_than: float | None = None,
    dry_run: bool = False,
    now: float | None = None,
) -> int:
    """Delete (or with dry_run count) the matching entries; returns how many."""
    pattern = entry_pattern(prefix, scope, model)
    now = time.time() if now is None else now
    deleted = 0
    cursor: Any = 0
    while True:
        cursor, keys = await client.scan(cursor=cursor, match=pattern, count=SCAN_COUNT)
        if keys and older_than is not None:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.get(key)
            values = await pipe.execute()
            # Unreadable entries go too: the service would delete them on their next lookup.
            keys = [
                key
                for key, raw in zip(keys, values, strict=True)
                if raw is not None
                and ((created := _created(raw)) is None or now - created >= older_than)
            ]
        for start in range(0, len(keys), UNLINK_BATCH):
            batch = keys[start : start + UNLINK_BATCH]
            deleted += len(batch) if dry_run else await client.unlink(*batch)
        if not cursor or cursor in (b"0", "0"):
            return deleted
