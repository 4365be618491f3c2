"""Purge cached answers of one tenant (optionally one model, optionally only old ones).

SCAN MATCH on the tenant's (and model's) key prefix, GET for the age when asked, UNLINK in
batches: only commands of the cache user's ACL. Entries are found by the scope and model in
their key, never by content. The tenant's semantic-cache sets go too (they hold embeddings of
its questions): whole, or with older_than only the elements of the entries deleted.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote

from .cache_key import entry_pattern, glob_escape

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
    deleted_keys: list[str] | None = None,
) -> int:
    """Delete (or with dry_run count) the matching entries; returns how many. The names of
    the entries deleted are appended to deleted_keys when given."""
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
        if deleted_keys is not None:
            deleted_keys.extend(key.decode() if isinstance(key, bytes) else key for key in keys)
        for start in range(0, len(keys), UNLINK_BATCH):
            batch = keys[start : start + UNLINK_BATCH]
            deleted += len(batch) if dry_run else await client.unlink(*batch)
        if not cursor or cursor in (b"0", "0"):
            return deleted


async def purge_semantic(
    client: Any,
    *,
    prefix: str,
    tenant: str,
    model: str | None = None,
    entry_keys: list[str] | None = None,
    dry_run: bool = False,
) -> int:
    """Delete the tenant's semantic-cache sets (one model's with model); with entry_keys, only
    the elements of those entries (the sets stay). Returns the sets, or elements, removed."""
    model_part = glob_escape(quote(model, safe="")) if model else "*"
    pattern = f"{glob_escape(prefix)}semantic:{glob_escape(quote(tenant, safe=''))}:{model_part}:*"
    digests = None if entry_keys is None else [key.rsplit(":", 1)[-1] for key in entry_keys]
    removed = 0
    cursor: Any = 0
    while True:
        cursor, keys = await client.scan(cursor=cursor, match=pattern, count=SCAN_COUNT)
        if digests is None:
            for start in range(0, len(keys), UNLINK_BATCH):
                batch = keys[start : start + UNLINK_BATCH]
                removed += len(batch) if dry_run else await client.unlink(*batch)
        elif digests and not dry_run:
            for key in keys:
                for start in range(0, len(digests), UNLINK_BATCH):
                    pipe = client.pipeline(transaction=False)
                    for digest in digests[start : start + UNLINK_BATCH]:
                        pipe.execute_command("VREM", key, digest)
                    removed += sum(1 for reply in await pipe.execute() if reply)
        if not cursor or cursor in (b"0", "0"):
            return removed
