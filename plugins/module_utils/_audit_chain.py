"""The hash chain and HMAC of the playbook-run audit log (JSON lines).

One place for the bytes that are hashed and signed, used by the onprem.llm.audit_log callback
that writes the log and by `onprem-llm audit verify` that checks it (the package imports this
file as onprem_llm.collection_utils._audit_chain).

Each line is one record: its canonical JSON, with `hmac` appended as the last member. A record
carries `seq` (1, 2, ... over the file), `prev` (sha256 of the previous line's bytes without its
line end; GENESIS for the first line) and `hmac` (HMAC-SHA256 of the canonical JSON of the
record without `hmac`, or null without a key).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

GENESIS = "0" * 64
MIN_KEY_BYTES = 32


class AuditKeyError(ValueError):
    """A key file that cannot be used."""


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, ASCII only: equal values always give equal bytes."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return text.encode("ascii")


def line_hash(line: bytes) -> str:
    """sha256 hex of a line's bytes without its line end: the next record's `prev`."""
    return hashlib.sha256(line).hexdigest()


def record_hmac(record: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 hex of the record's canonical JSON, its own `hmac` field left out."""
    unsigned = {name: value for name, value in record.items() if name != "hmac"}
    return hmac.new(key, canonical_json(unsigned), hashlib.sha256).hexdigest()


def hmac_matches(record: Mapping[str, Any], key: bytes) -> bool:
    signature = record.get("hmac")
    return isinstance(signature, str) and hmac.compare_digest(signature, record_hmac(record, key))


def seal(record: Mapping[str, Any], seq: int, prev: str, key: bytes | None) -> bytes:
    """The record's line (without line end): chained after `prev`, signed when there is a key.
    The signed bytes are the line up to the appended `hmac`, so they are serialised once."""
    unsigned = canonical_json({**record, "seq": seq, "prev": prev})
    signature = hmac.new(key, unsigned, hashlib.sha256).hexdigest() if key else None
    return unsigned[:-1] + b',"hmac":' + json.dumps(signature).encode("ascii") + b"}"


def chain_position(line: bytes) -> int | None:
    """The seq of a line that is a chained record, else None (not JSON, or no seq/prev)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    seq, prev = record.get("seq"), record.get("prev")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1 or not isinstance(prev, str):
        return None
    return seq


def load_key(path: str | Path) -> bytes:
    """The key a key file holds as text (surrounding whitespace ignored); OSError if unreadable."""
    key = Path(path).read_bytes().strip()
    if len(key) < MIN_KEY_BYTES:
        raise AuditKeyError(
            f"the key in {path} is {len(key)} bytes long; it must be at least {MIN_KEY_BYTES}"
        )
    return key
