"""Server-sent events as OpenAI streams them: cutting at event boundaries, parsing, encoding.

The pass-through path never parses JSON: it only cuts the byte stream at blank lines, so that an
upstream failure can be reported as a whole ``data: {"error": …}`` event instead of landing in
the middle of a half-sent one. The parsing path works a block (one upstream read) at a time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

DONE = b"data: [DONE]\n\n"
_SEPARATORS = (b"\n\n", b"\r\n\r\n", b"\r\r")


def _last_boundary(buf: bytes) -> int:
    """Index just past the last complete event in ``buf``, or 0."""
    end = 0
    for sep in _SEPARATORS:
        at = buf.rfind(sep)
        if at >= 0:
            end = max(end, at + len(sep))
    return end


class EventCutter:
    """Feed raw bytes, get back only whole events (possibly several at once); keeps the remainder."""

    __slots__ = ("pending",)

    def __init__(self) -> None:
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        if not self.pending and data.endswith(b"\n\n"):  # the usual case: whole events per read
            return data
        buf = self.pending + data if self.pending else data
        end = _last_boundary(buf)
        if end == len(buf):
            self.pending = b""
            return buf
        self.pending = buf[end:]
        return buf[:end]

    def rest(self) -> bytes:
        """What is left at the end of the stream, closed as an event (or b"" when nothing is)."""
        rest, self.pending = self.pending, b""
        return rest.rstrip(b"\r\n") + b"\n\n" if rest.strip() else b""


def split_events(block: bytes) -> list[bytes]:
    """The events of a block of whole events, each ending with its blank line."""
    if b"\r" not in block:
        return [part + b"\n\n" for part in block.split(b"\n\n") if part]
    events = []
    start = 0
    while start < len(block):
        end = len(block)
        for sep in _SEPARATORS:
            at = block.find(sep, start)
            if at >= 0:
                end = min(end, at + len(sep))
        events.append(block[start:end])
        start = end
    return events


def decode_data(event: bytes) -> dict[str, Any] | None:
    """The JSON object in an event's ``data:`` lines, or None for ``[DONE]``, comments and non-objects."""
    if event.startswith(b"data:") and event.count(b"\n") <= 2 and b"\r" not in event:
        payload = event[5:].strip()  # one data line: the usual shape
    else:
        lines = [line[5:].lstrip() for line in event.splitlines() if line.startswith(b"data:")]
        if not lines:
            return None
        payload = b"\n".join(lines)
    if payload == b"[DONE]":
        return None
    try:
        value = orjson.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def is_done(event: bytes) -> bool:
    """Whether an event is the ``data: [DONE]`` sentinel that ends an OpenAI stream."""
    if b"[DONE]" not in event:
        return False
    return any(line[5:].strip() == b"[DONE]" for line in event.splitlines() if line.startswith(b"data:"))


async def once(data: bytes) -> AsyncIterator[bytes]:
    """A stream body that is ready to send, as one block."""
    yield data


def encode_data(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


def encode_events(chunks: list[dict[str, Any]], named: bool) -> bytes:
    """The chunks as SSE events; ``named``: each with an ``event:`` line from its ``type`` (Responses, Messages)."""
    out = []
    for chunk in chunks:
        data = encode_data(chunk)
        kind = chunk.get("type")
        out.append(b"event: " + kind.encode() + b"\n" + data if named and isinstance(kind, str) else data)
    return b"".join(out)


def _nested_usage(chunk: dict[str, Any]) -> bool:
    response = chunk.get("response")  # a Responses stream's last event carries the whole response
    return isinstance(response, dict) and isinstance(response.get("usage"), dict)


def find_usage(tail: bytes) -> dict[str, Any] | None:
    """The last chunk carrying a ``usage`` object (or a response that has one) in the tail of a stream."""
    at = tail.rfind(b'"usage":')
    while at >= 0:
        start = tail.rfind(b"data:", 0, at)
        end = tail.find(b"\n\n", at)
        if start >= 0:
            chunk = decode_data(tail[start : len(tail) if end < 0 else end + 2])
            if chunk and (isinstance(chunk.get("usage"), dict) or _nested_usage(chunk)):
                return chunk
        at = tail.rfind(b'"usage":', 0, at)
    return None
