"""Cutting SSE streams at event boundaries, and reading events, whatever the upstream's read sizes."""

from __future__ import annotations

import json

import pytest

from proxy import sse

EVENTS = [b'data: {"i":%d,"usage":null}\n\n' % i for i in range(5)] + [
    b'data: {"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":5,"total_tokens":8}}\n\n',
    sse.DONE,
]
STREAM = b"".join(EVENTS)


@pytest.mark.parametrize("size", [1, 2, 7, 13, 64, len(STREAM)])
def test_cutter_only_emits_whole_events_whatever_the_read_size(size: int) -> None:
    cutter = sse.EventCutter()
    out = [cutter.feed(STREAM[i : i + size]) for i in range(0, len(STREAM), size)]
    blocks = [b for b in out if b]
    assert all(block.endswith(b"\n\n") for block in blocks)
    assert b"".join(blocks) == STREAM
    assert cutter.rest() == b""


def test_a_half_event_is_held_back_and_closed_at_the_end() -> None:
    cutter = sse.EventCutter()
    assert cutter.feed(EVENTS[0] + b'data: {"i":') == EVENTS[0]
    assert cutter.rest() == b'data: {"i":\n\n'


def test_crlf_events_are_split_and_decoded() -> None:
    block = b'data: {"a":1}\r\n\r\ndata: {"b":2}\r\n\r\n: comment\r\n\r\n'
    events = sse.split_events(block)
    assert len(events) == 3
    assert [sse.decode_data(e) for e in events] == [{"a": 1}, {"b": 2}, None]


def test_decode_handles_multiline_data_done_and_garbage() -> None:
    assert sse.decode_data(b'event: x\ndata: {"a":\ndata: 1}\n\n') == {"a": 1}
    assert sse.decode_data(sse.DONE) is None
    assert sse.decode_data(b"data: not json\n\n") is None
    assert sse.decode_data(b"data: [1, 2]\n\n") is None


def test_encode_round_trips_unicode_compactly() -> None:
    event = sse.encode_data({"content": "héllo ✓"})
    assert event.startswith(b'data: {"content":') and event.endswith(b"\n\n")
    assert sse.decode_data(event) == {"content": "héllo ✓"}


def test_find_usage_reads_the_final_usage_chunk() -> None:
    found = sse.find_usage(STREAM[-200:])
    assert found is not None and found["usage"]["total_tokens"] == 8
    assert sse.find_usage(b"".join(EVENTS[:5])) is None
    assert json.loads(json.dumps(found))  # a plain dict
