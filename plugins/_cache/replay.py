"""Streams and whole answers: keep a stream as its events or assemble it into one answer, and replay
either as a stream.

Chat and completions: a finished single-choice stream is stored as its own events (``raw_entry``: no
parsing, checked by its one ``finish_reason``); a streamed hit replays them, a whole-answer hit
assembles them. Other streams (several choices, ``n`` > 1) are assembled into one answer when stored,
and replayed from it (``chunks``). Responses and Messages (``NAMED``): a stream is assembled into the
answer the API returns without ``stream`` (``proxy.answershapes``: the final ``response`` of a Responses
stream, the ``message`` an Anthropic stream builds up) and stored as that; a streamed hit is that answer
as the API's own named events (``named_replay``), the same events ``proxy.wholeanswer`` sends.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import orjson

from proxy.answershapes import assemble as assemble_shape
from proxy.answershapes import synthesize
from proxy.exchange import Usage
from proxy.sse import DONE, decode_data, encode_events, split_events

STREAMABLE = frozenset({"chat", "completions"})
"""Endpoints whose streams are kept as their own events (a ``raw_entry``) or assembled here."""
NAMED = frozenset({"responses", "messages"})
"""Endpoints whose streams are named events (``event:`` lines), stored as the whole answer they build."""


class Assembler:
    """Rebuilds the whole answer from a chat or completions stream's chunks (fed in order)."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.head: dict[str, Any] = {}
        self.choices: dict[int, dict[str, Any]] = {}
        self.usage: dict[str, Any] | None = None

    def feed(self, chunk: dict[str, Any]) -> None:
        if not self.head:
            self.head = {k: chunk[k] for k in ("id", "created", "model", "system_fingerprint") if k in chunk}
        if isinstance(chunk.get("usage"), dict):
            self.usage = chunk["usage"]
        for raw in chunk.get("choices") or ():
            if isinstance(raw, dict):
                self._choice(raw)

    def _choice(self, raw: dict[str, Any]) -> None:
        index = raw.get("index", 0)
        choice = self.choices.setdefault(index, {"index": index, "text": [], "tools": {}, "finish_reason": None})
        if raw.get("finish_reason"):
            choice["finish_reason"] = raw["finish_reason"]
        if self.endpoint == "completions":
            choice["text"].append(str(raw.get("text") or ""))
            return
        delta = raw.get("delta") or {}
        if delta.get("role"):
            choice["role"] = delta["role"]
        if delta.get("content"):
            choice["text"].append(str(delta["content"]))
        if delta.get("refusal"):
            choice["refusal"] = choice.get("refusal", "") + str(delta["refusal"])
        for call in delta.get("tool_calls") or ():
            slot = choice["tools"].setdefault(call.get("index", 0), {"type": "function", "function": {"arguments": ""}})
            if call.get("id"):
                slot["id"] = call["id"]
            function = call.get("function") or {}
            if function.get("name"):
                slot["function"]["name"] = function["name"]
            slot["function"]["arguments"] += str(function.get("arguments") or "")

    def result(self) -> dict[str, Any] | None:
        """The whole answer, or None when some choice never finished (a cut or broken stream)."""
        if not self.choices or any(c["finish_reason"] is None for c in self.choices.values()):
            return None
        choices = [self._whole(self.choices[i]) for i in sorted(self.choices)]
        kind = "text_completion" if self.endpoint == "completions" else "chat.completion"
        body: dict[str, Any] = {**self.head, "object": kind, "choices": choices}
        if self.usage is not None:
            body["usage"] = self.usage
        return body

    def _whole(self, c: dict[str, Any]) -> dict[str, Any]:
        text = "".join(c["text"])
        if self.endpoint == "completions":
            return {"index": c["index"], "text": text, "logprobs": None, "finish_reason": c["finish_reason"]}
        message: dict[str, Any] = {"role": c.get("role", "assistant"), "content": text or None}
        if "refusal" in c:
            message["refusal"] = c["refusal"]
        if c["tools"]:
            message["tool_calls"] = [c["tools"][i] for i in sorted(c["tools"])]
        return {"index": c["index"], "message": message, "finish_reason": c["finish_reason"]}


def assemble(endpoint: str, blocks: list[bytes], usage: Usage | None) -> dict[str, Any] | None:
    """The whole answer from a stream's bytes as the client got them, or None when it never finished.

    ``usage`` (what the chain recorded) stands in for a usage chunk the client did not ask for and so
    did not get: a hit then carries the usage its answer cost, as a whole answer's entry does. (A
    Responses or Messages stream always carries its usage: in its final response, in ``message_start``
    and ``message_delta``.)
    """
    if endpoint in NAMED:
        events = [chunk for block in blocks for event in split_events(block) if (chunk := decode_data(event))]
        return assemble_shape(endpoint, events)
    assembler = Assembler(endpoint)
    for block in blocks:
        for event in split_events(block):
            chunk = decode_data(event)
            if chunk is not None:
                assembler.feed(chunk)
    whole = assembler.result()
    if whole is not None and "usage" not in whole and usage is not None:
        whole["usage"] = usage_dict(usage)
    return whole


_FINISH = re.compile(rb'"finish_reason":\s*"([^"\\]+)"')  # bare quotes: a key, never inside a string
_USAGE_OBJECT = re.compile(rb'"usage":\s*\{')
_NULL_USAGE = re.compile(rb',\s*"usage":\s*null')


def raw_entry(blocks: list[bytes], usage: Usage | None, choices: object) -> tuple[str, bytes] | None:
    """A single-choice stream kept as its own events, without parsing them: (finish reason, entry bytes).

    Assembling a stream into one answer parses every event (~5 µs each, most of what caching a stream
    cost); kept as events, a streamed hit replays them as they are and a whole-answer hit assembles them
    then. The entry is the events less ``[DONE]``, every ``"usage": null`` and the usage chunk, plus one
    usage chunk at the end (the stream's own, else ``usage``, what the chain recorded, if any). None when
    the stream is not one finished choice in plain ``data:`` events (``choices``, the request's ``n``,
    not 1; errors; no ``[DONE]``): the caller assembles it instead.
    """
    if choices not in (None, 1):
        return None
    raw = b"".join(blocks)
    if not raw.startswith(b"data: {") or not raw.endswith(DONE) or b"event:" in raw or b'"error"' in raw:
        return None
    reasons = _FINISH.findall(raw)
    if len(reasons) != 1:
        return None
    body = raw[: -len(DONE)]
    found = _USAGE_OBJECT.search(body)
    tail = b""
    if found is not None:
        start = _event_start(body, found.start())
        end = body.find(b"\n\n", found.end())
        if start <= 0 or end < 0 or body.find(b"\n\n", end + 2) >= 0:
            return None  # usage somewhere but in the last event: not the shape this expects
        tail, body = body[start : end + 2], body[:start]
    body = _NULL_USAGE.sub(b"", body)
    if not tail and usage is not None:
        first = orjson.loads(body[6 : body.find(b"\n\n")])
        head = {k: first[k] for k in ("id", "object", "created", "model", "system_fingerprint") if k in first}
        tail = b"data: " + orjson.dumps({**head, "choices": [], "usage": usage_dict(usage)}) + b"\n\n"
    return reasons[0].decode(), body + tail


def is_raw(entry: bytes) -> bool:
    """Whether a stored answer is a stream's events (``raw_entry``) rather than one JSON answer."""
    return entry.startswith(b"data:")


def raw_replay(entry: bytes, include_usage: bool) -> bytes:
    """A ``raw_entry`` as the stream a client gets: with its usage chunk only when the client asked."""
    last = _event_start(entry, len(entry) - 2)
    if not include_usage and _USAGE_OBJECT.search(entry, last) is not None:
        entry = entry[:last]
    return entry + DONE


def _event_start(body: bytes, before: int) -> int:
    """Where the event holding position ``before`` starts (a blank line is always an event boundary:
    JSON escapes the newlines inside strings)."""
    boundary = body.rfind(b"\n\n", 0, before)
    return 0 if boundary < 0 else boundary + 2


def raw_whole(endpoint: str, entry: bytes) -> dict[str, Any] | None:
    """A ``raw_entry`` assembled into the whole answer (for a request that did not stream)."""
    return assemble(endpoint, [entry], None)


def usage_dict(usage: Usage) -> dict[str, Any]:
    """A ``Usage`` in OpenAI's chat shape."""
    out: dict[str, Any] = {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    return out


def chunks(endpoint: str, body: dict[str, Any], include_usage: bool) -> list[dict[str, Any]]:
    """A whole chat or completions answer as the chunks of a stream (usage chunk when asked)."""
    head: dict[str, Any] = {k: body[k] for k in ("id", "created", "model", "system_fingerprint") if k in body}
    kind = "text_completion" if endpoint == "completions" else "chat.completion.chunk"
    out: list[dict[str, Any]] = []
    for choice in body.get("choices") or ():
        index = choice.get("index", 0)
        if endpoint == "completions":
            out.append({**head, "object": kind, "choices": [{"index": index, "text": choice.get("text") or "",
                        "logprobs": None, "finish_reason": None}]})  # fmt: skip
        else:
            message = choice.get("message") or {}
            delta: dict[str, Any] = {"role": message.get("role", "assistant"), "content": message.get("content")}
            if message.get("tool_calls"):
                delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
            if message.get("refusal"):
                delta["refusal"] = message["refusal"]
            out.append({**head, "object": kind, "choices": [{"index": index, "delta": delta, "finish_reason": None}]})
        empty: dict[str, Any] = {"text": ""} if endpoint == "completions" else {"delta": {}}
        out.append({**head, "object": kind, "choices": [{"index": index, **empty,
                    "finish_reason": choice.get("finish_reason") or "stop"}]})  # fmt: skip
    if include_usage:
        for chunk in out:
            chunk["usage"] = None
        out.append({**head, "object": kind, "choices": [], "usage": body.get("usage")})
    return out


def named_replay(endpoint: str, answer: dict[str, Any]) -> bytes:
    """A whole Responses or Messages answer as the stream of named events that API sends for it."""
    return encode_events(synthesize(endpoint, answer, usage_chunk=False), named=True)


async def sse(events: list[dict[str, Any]]) -> AsyncIterator[bytes]:
    """The events as one SSE body ending in ``[DONE]``."""
    yield b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"
