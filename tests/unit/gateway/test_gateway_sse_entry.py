"""SSE splitting and the stored entry format."""

from __future__ import annotations

import json

import pytest

from onprem_llm.gateway.sse import EventSplitter, event_json, is_done, is_usage_only, usage_of
from onprem_llm.gateway.store import ENTRY_FORMAT, Entry, EntryError

EVENTS = [
    b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n',
    b'data: {"choices":[{"delta":{"content":"b\\n"}}]}\r\n\r\n',
    b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}\n\n',
    b"data: [DONE]\n\n",
]


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_events_survive_any_chunking_byte_for_byte(size: int) -> None:
    stream = b"".join(EVENTS)
    splitter = EventSplitter()
    out = []
    for start in range(0, len(stream), size):
        out.extend(splitter.feed(stream[start : start + size]))
    assert out == EVENTS
    assert splitter.rest() == b""


def test_a_cut_stream_leaves_its_tail() -> None:
    splitter = EventSplitter()
    assert splitter.feed(EVENTS[0] + b'data: {"choi') == [EVENTS[0]]
    assert splitter.rest() == b'data: {"choi'


def test_done_usage_and_json_of_events() -> None:
    assert is_done(b"data: [DONE]\n\n") and is_done(b"data:[DONE]\r\n\r\n")
    assert not is_done(EVENTS[0])
    value = event_json(EVENTS[2])
    assert is_usage_only(value)
    assert usage_of(value) == {"prompt_tokens": 3, "completion_tokens": 2}
    assert not is_usage_only(event_json(EVENTS[0]))
    assert event_json(b": comment\n\n") is None
    assert event_json(b"data: {broken\n\n") is None
    assert event_json(b'data: {"a":\ndata: 1}\n\n') == {"a": 1}


def test_entries_round_trip_and_replay_usage_only_on_request() -> None:
    stream = Entry(
        1000.0,
        4600.0,
        "text/event-stream",
        {"prompt_tokens": 3},
        events=tuple(EVENTS),
        usage_events=(2,),
    )
    decoded = Entry.decode(stream.encode("d1"), "d1", stream=True)
    assert decoded == stream
    assert decoded.replay(include_usage=True) == b"".join(EVENTS)
    assert decoded.replay(include_usage=False) == EVENTS[0] + EVENTS[1] + EVENTS[3]
    body = Entry(1000.0, 4600.0, "application/json", None, body='{"x":"é"}'.encode())
    assert Entry.decode(body.encode("d2"), "d2", stream=False) == body
    assert body.remaining(4000.4) == 599
    assert body.age(999.0) == 0.0


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        json.dumps({"format": ENTRY_FORMAT + 1}).encode(),
        json.dumps({"format": ENTRY_FORMAT, "key": "other"}).encode(),
        json.dumps(
            {"format": ENTRY_FORMAT, "key": "d", "created": "x", "expires": 1, "content_type": "a"}
        ).encode(),
        json.dumps(
            {
                "format": ENTRY_FORMAT,
                "key": "d",
                "created": 1,
                "expires": 2,
                "content_type": "application/json",
                "usage": None,
                "body": 5,
            }
        ).encode(),
        12,
    ],
)
def test_anything_but_an_entry_for_this_key_is_refused(raw: object) -> None:
    with pytest.raises(EntryError):
        Entry.decode(raw, "d", stream=False)


def test_a_json_entry_is_not_a_stream_entry() -> None:
    body = Entry(1.0, 2.0, "application/json", None, body=b"{}")
    with pytest.raises(EntryError):
        Entry.decode(body.encode("d"), "d", stream=True)
    stream = Entry(1.0, 2.0, "text/event-stream", None, events=(b"data: x\n\n",), usage_events=(5,))
    with pytest.raises(EntryError):
        Entry.decode(stream.encode("d"), "d", stream=True)
