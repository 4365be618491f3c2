"""Request audit: one JSON line per API request, written by the gateway service.

A record says who asked (tenant, hashed key id, pseudonymised user), what (path, model, data
class), where it went (route: on-prem, cloud:<provider>, cache) and how it ended (cache result,
status, tokens, duration), under HAProxy's request id so that it joins HAProxy's access log.
Prompt and answer text are never in it, unless the tenant opted in to content logging; then the
text goes to a second file (its own retention, usually shorter), one content record per request
under the same request id, with obvious personal data redacted (e-mail addresses, phone numbers,
IBANs, card numbers), and user identifiers are replaced by an HMAC with the site's key.

Each record is one os.write() on a file opened with O_APPEND: lines from several processes never
interleave, nothing waits in a buffer when the service is killed, and a request pays one system
call (a few microseconds) for it.
"""

from __future__ import annotations

import fcntl
import glob
import gzip
import hashlib
import hmac
import json
import os
import re
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# Personal data found in free text. Candidates are checked (Luhn, ISO 13616 mod 97) before they
# are redacted, so that ordinary numbers (an order number, a year, a quantity) stay readable.
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_IBAN = re.compile(r"\b[A-Z]{2}[0-9]{2}(?:[ ]?[A-Z0-9]{4}){2,7}(?:[ ]?[A-Z0-9]{1,4})?\b")
_CARD = re.compile(r"\b[0-9](?:[ -]?[0-9]){12,18}\b")
# International (+CC ...) or national numbers written with separators or a leading 0: 8 to 15
# digits in all.
_PHONE = re.compile(r"(?<![\w+])(?:\+[0-9]{1,3}|\(?0[0-9]{0,4}\)?)(?:[ ./-]?\(?[0-9]{1,4}\)?){2,6}")

REDACTED_EMAIL = "[email]"
REDACTED_PHONE = "[phone]"
REDACTED_IBAN = "[iban]"
REDACTED_CARD = "[card]"


def _luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def _iban_valid(text: str) -> bool:
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in moved)
    return int(number) % 97 == 1


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return REDACTED_CARD if 13 <= len(digits) <= 19 and _luhn_valid(digits) else match.group(0)


def _phone(match: re.Match[str]) -> str:
    text, tail = match.group(0), ""
    if text.endswith(")") and text.count(")") > text.count("("):
        text, tail = text[:-1], ")"  # the bracket around the number, not part of it
    digits = re.sub(r"[^0-9]", "", text)
    return REDACTED_PHONE + tail if 8 <= len(digits) <= 15 else match.group(0)


def _numbers(text: str) -> str:
    return _PHONE.sub(_phone, _CARD.sub(_card, text))


def redact(text: str) -> str:
    """The text with e-mail addresses, IBANs, card numbers and phone numbers replaced.

    An IBAN-shaped string is redacted when its check digits are right and left whole otherwise:
    its digit groups are not read as a card or phone number."""
    text = _EMAIL.sub(REDACTED_EMAIL, text)
    out, last = [], 0
    for match in _IBAN.finditer(text):
        out.append(_numbers(text[last : match.start()]))
        out.append(REDACTED_IBAN if _iban_valid(match.group(0)) else match.group(0))
        last = match.end()
    out.append(_numbers(text[last:]))
    return "".join(out)


def pseudonym(key: bytes, identifier: str) -> str:
    """A stable pseudonym of a user identifier: HMAC-SHA256 with the site key, 16 bytes, hex."""
    return hmac.new(key, identifier.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


def _texts(value: Any) -> Iterable[str]:
    """The text of a prompt or message content (strings, or OpenAI content parts)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for part in value:
            if isinstance(part, str):
                yield part
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                yield part["text"]


def request_content(body: Any) -> list[dict[str, str]]:
    """The request's text, redacted: chat messages by role, or a completion's prompt."""
    if not isinstance(body, Mapping):
        return []
    out: list[dict[str, str]] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if isinstance(message, Mapping):
                role = message.get("role")
                for text in _texts(message.get("content")):
                    out.append({"role": str(role), "text": redact(text)})
    for key in ("prompt", "input"):
        for text in _texts(body.get(key)):
            out.append({"role": key, "text": redact(text)})
    return out


def answer_content(answer: Any) -> list[str]:
    """The answer's text, redacted: each choice's message content or completion text."""
    if not isinstance(answer, Mapping) or not isinstance(answer.get("choices"), list):
        return []
    out = []
    for choice in answer["choices"]:
        if not isinstance(choice, Mapping):
            continue
        message = choice.get("message")
        text = message.get("content") if isinstance(message, Mapping) else choice.get("text")
        if isinstance(text, str):
            out.append(redact(text))
    return out


MIN_KEY_BYTES = 32


class AuditError(Exception):
    """The audit cannot start: its key file is unreadable or too short."""


@dataclass(frozen=True)
class AuditConfig:
    """Where records and content records go, and which tenants' text is kept."""

    path: str | None = None
    content_path: str | None = None
    content_tenants: frozenset[str] = field(default_factory=frozenset)
    pseudonymisation_key_file: str | None = None


def read_key(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            key = handle.read().strip()
    except OSError as exc:
        raise AuditError(
            f"audit.pseudonymisation_key_file: cannot read {path}: {exc.strerror}"
        ) from None
    if len(key) < MIN_KEY_BYTES:
        raise AuditError(
            f"audit.pseudonymisation_key_file: {path} holds {len(key)} bytes, "
            f"at least {MIN_KEY_BYTES} are needed"
        )
    return key


class RequestAudit:
    """Writes one record per request; a disabled or closed audit writes nothing."""

    def __init__(self, config: AuditConfig, wall: Any = time.time) -> None:
        self.config = config
        self._wall = wall
        key_file = config.pseudonymisation_key_file
        self._key = read_key(key_file) if key_file else b""
        self._fd = _open_append(config.path)
        self._content_fd = _open_append(config.content_path) if config.content_tenants else None

    @property
    def enabled(self) -> bool:
        return self._fd is not None

    def keeps_content(self, tenant: str) -> bool:
        return self._content_fd is not None and tenant in self.config.content_tenants

    def user(self, body: Any) -> str | None:
        """The pseudonym of the request's `user` field, when there is one and a key."""
        if not isinstance(body, Mapping) or not self._key:
            return None
        user = body.get("user")
        if not isinstance(user, str) or not user:
            return None
        return pseudonym(self._key, user)

    def write(self, record: dict[str, Any], content: dict[str, Any] | None = None) -> None:
        """Append the request's record and, for a tenant that opted in, its content record
        (request id, tenant, user and the redacted text) to the content file."""
        if self._fd is None:
            return
        stamp = _iso(self._wall())
        if content is not None and self._content_fd is not None:
            keys = {name: record[name] for name in _CONTENT_KEYS if name in record}
            _append(self._content_fd, {"time": stamp, **keys, **content})
            record = {**record, "content": True}
        _append(self._fd, {"time": stamp, **record})

    def close(self) -> None:
        for fd in (self._fd, self._content_fd):
            if fd is not None:
                os.close(fd)
        self._fd = self._content_fd = None


# What a content record repeats of its request record: enough to join them and to erase by.
_CONTENT_KEYS = ("request_id", "tenant", "user")


def _open_append(path: str | None) -> int | None:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600) if path else None


def _iso(seconds: float) -> str:
    whole = int(seconds)
    millis = int((seconds - whole) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{millis:03d}Z"


def _append(fd: int, record: dict[str, Any]) -> None:
    line = json.dumps(record, separators=(",", ":"), ensure_ascii=False) + "\n"
    # Shared: writers do not wait for each other, only for an erasure rewriting the file.
    fcntl.flock(fd, fcntl.LOCK_SH)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _erased(line: bytes, tenant: str, user: str | None) -> bool:
    """Whether a line is a record of the tenant (of its user, when one is named). Erasure
    records stay: they are the trail of the erasures themselves."""
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return (
        isinstance(record, dict)
        and record.get("tenant") == tenant
        and "event" not in record
        and (user is None or record.get("user") == user)
    )


def _filter(lines: list[bytes], tenant: str, user: str | None) -> tuple[list[bytes], int]:
    kept = [line for line in lines if not _erased(line, tenant, user)]
    return kept, len(lines) - len(kept)


def _erase_rotated(path: str, tenant: str, user: str | None, dry_run: bool) -> tuple[int, int]:
    """Rotated copies of one file (requests.jsonl-20261204, requests.jsonl-20261203.gz, ...):
    each rewritten beside itself and renamed over it. Returns (records removed, files)."""
    removed = files = 0
    for name in sorted(glob.glob(glob.escape(path) + "?*")):
        opener = gzip.open if name.endswith(".gz") else open
        with opener(name, "rb") as handle:
            kept, count = _filter(handle.read().splitlines(keepends=True), tenant, user)
        if count and not dry_run:
            directory = os.path.dirname(name)
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=".erase-")
            os.close(fd)
            with opener(temporary, "wb") as handle:
                handle.writelines(kept)
            stat = os.stat(name)
            os.chown(temporary, stat.st_uid, stat.st_gid)
            os.chmod(temporary, stat.st_mode & 0o7777)
            os.replace(temporary, name)
        removed += count
        files += bool(count)
    return removed, files


def _erase_live(fd: int, tenant: str, user: str | None, dry_run: bool) -> int:
    """The live file, rewritten in place under an exclusive lock, so that the service's appends
    neither get lost nor land in a replaced file. The caller holds the lock."""
    with os.fdopen(os.dup(fd), "rb") as handle:
        kept, count = _filter(handle.read().splitlines(keepends=True), tenant, user)
    if count and not dry_run:
        os.ftruncate(fd, 0)
        os.write(fd, b"".join(kept))
    return count


def erase_tenant(
    path: str,
    tenant: str,
    *,
    content_path: str | None = None,
    user: str | None = None,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Remove a tenant's request records (only those of one user, given as its pseudonym) from
    the audit file, the content file and their rotated copies (plain or gzip), then record the
    erasure itself in the audit file: tenant, scope (tenant or user) and counts; never the user's
    pseudonym, which would link the erased user's other traces."""
    removed = files = content_removed = 0
    for name in filter(None, (content_path, path)):
        count, touched = _erase_rotated(name, tenant, user, dry_run)
        live = name == path
        if os.path.exists(name):
            fd = os.open(name, os.O_RDWR | os.O_APPEND)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                in_live = _erase_live(fd, tenant, user, dry_run)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)
            count += in_live
            touched += bool(in_live)
        if live:
            removed += count
        else:
            content_removed += count
        files += touched
    result: dict[str, Any] = {
        "tenant": tenant,
        "scope": "tenant" if user is None else "user",
        "records_removed": removed,
        "content_removed": content_removed,
        "files": files,
    }
    if not dry_run and os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        try:
            _append(fd, {"time": _iso(time.time()), "event": "erasure", **result})
        finally:
            os.close(fd)
    return {**result, "dry_run": dry_run}
