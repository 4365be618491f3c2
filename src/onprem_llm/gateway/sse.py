"""Server-sent events as the engines send them: split on blank lines, kept byte for byte."""

from __future__ import annotations

import json
import re
from typing import Any

_BOUNDARY = re.compile(rb"\r\n\r\n|\n\n|\r\r")
_DONE = (b"data: [DONE]", b"data:[DONE]")


class EventSplitter:
    """Cuts a byte stream into complete events, each with its terminating blank line."""

    __slots__ = ("_buffer",)

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        data = self._buffer + chunk if self._buffer else chunk
        events = []
        start = 0
        for match in _BOUNDARY.finditer(data):
            events.append(data[start : match.end()])
            start = match.end()
        self._buffer = data[start:]
        return events

    def rest(self) -> bytes:
        """What came after the last complete event (non-empty only for a cut stream)."""
        return self._buffer


def is_done(event: bytes) -> bool:
    return event.strip() in _DONE


def event_json(event: bytes) -> Any:
    """The JSON value of an event's data lines, or None when there is none."""
    data = []
    for line in event.splitlines():
        if line.startswith(b"data:"):
            value = line[5:]
            data.append(value[1:] if value.startswith(b" ") else value)
    if not data:
        return None
    try:
        return json.loads(b"\n".join(data))
    except ValueError:
        return None


def usage_of(value: Any) -> dict[str, Any] | None:
    """The `usage` object of a parsed chunk or response, if it has one."""
    if isinstance(value, dict):
        usage = value.get("usage")
        if isinstance(usage, dict):
            return usage
    return None


def is_usage_only(value: Any) -> bool:
    """The final chunk of `stream_options.include_usage`: no choices, only usage."""
    return isinstance(value, dict) and value.get("choices") == [] and usage_of(value) is not None
