"""Where model-visible text lives in the OpenAI Responses API (``POST /v1/responses``).

Requests:
  ``instructions``; ``input`` as a string, or items: messages (``content`` a string or ``input_text`` /
  ``output_text`` / ``refusal`` parts; the role decides the trust), ``function_call.arguments`` (earlier
  model turns), ``function_call_output.output`` (untrusted tool results, a string or ``input_text``
  parts), ``reasoning`` summaries and texts; function ``tools``: ``description`` and the descriptions in
  their ``parameters`` schema.

Answers: the ``output`` items of a Response (message parts, function-call arguments, reasoning texts).

Stream events: ``*.delta`` events extend a growing text named ``(output_index, kind, content_index)``;
``*.done`` events, ``content_part``/``output_item`` events and the ``response.*`` lifecycle events carry
whole texts (``stream_key`` None). A text ends at its ``*.done`` event, an item's texts at
``response.output_item.done``, all texts at ``response.completed`` / ``incomplete`` / ``failed``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from proxy.textview.base import TRUST_OF_ROLE, Path, StreamKey, TextRef, ref_at, tool_definition

_PART_KINDS = {"input_text": ("text", "content"), "output_text": ("text", "content"), "refusal": ("refusal", "refusal")}
_REASONING_LISTS = (("summary", "reasoning_summary"), ("content", "reasoning"))
# delta event type → (field, kind, name of its sub-index)
_DELTAS = {
    "response.output_text.delta": ("content", "content_index"),
    "response.refusal.delta": ("refusal", "content_index"),
    "response.function_call_arguments.delta": ("tool_arguments", None),
    "response.reasoning_text.delta": ("reasoning", "content_index"),
    "response.reasoning_summary_text.delta": ("reasoning_summary", "summary_index"),
}
_DONE_TEXT = {
    "response.output_text.done": ("text", "content", "content_index"),
    "response.refusal.done": ("refusal", "refusal", "content_index"),
    "response.function_call_arguments.done": ("arguments", "tool_arguments", None),
    "response.reasoning_text.done": ("text", "reasoning", "content_index"),
    "response.reasoning_summary_text.done": ("text", "reasoning_summary", "summary_index"),
}
_WHOLE_RESPONSE = ("response.created", "response.in_progress", "response.completed", "response.incomplete",
                   "response.failed", "response.queued")  # fmt: skip
_ENDS_ALL = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})


def request_texts(body: dict[str, Any]) -> list[TextRef]:
    refs: list[TextRef] = []
    if ref := ref_at(body, "instructions", "system", "content", "system", ("instructions",)):
        refs.append(ref)
    value = body.get("input")
    if isinstance(value, str):
        refs.append(TextRef(value, "user", "content", "user", ("input",), False, body, "input"))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, dict):
                refs.extend(_item(item, ("input", i), None))
    tools = body.get("tools")
    if isinstance(tools, list):
        for k, tool in enumerate(tools):
            if isinstance(tool, dict) and tool.get("type") == "function":
                refs.extend(tool_definition(tool, ("tools", k)))
    return refs


def _item(item: dict[str, Any], path: Path, output_index: int | None) -> Iterator[TextRef]:
    """The texts of one input or output item; ``output_index`` set for an answer's items (stream keys)."""
    kind = item.get("type", "message" if "role" in item else None)
    if kind == "message":
        role = str(item["role"]) if isinstance(item.get("role"), str) else "user"
        trust = TRUST_OF_ROLE.get(role, "user")
        content = item.get("content")
        if isinstance(content, str):
            yield TextRef(content, role, "content", trust, (*path, "content"), False, item, "content")
        elif isinstance(content, list):
            for j, part in enumerate(content):
                spec = _PART_KINDS.get(str(part.get("type"))) if isinstance(part, dict) else None
                if spec is None:
                    continue
                field, text_kind = spec
                key: StreamKey | None = None if output_index is None else (output_index, text_kind, j)
                if ref := ref_at(part, field, role, text_kind, trust, (*path, "content", j, field), stream_key=key):
                    yield ref
    elif kind == "function_call":
        key = None if output_index is None else (output_index, "tool_arguments", None)
        ref = ref_at(item, "arguments", "assistant", "tool_arguments", "model", (*path, "arguments"), json=True,
                     stream_key=key)  # fmt: skip
        if ref:
            yield ref
    elif kind in ("function_call_output", "custom_tool_call_output"):
        output = item.get("output")
        if isinstance(output, str):
            yield TextRef(output, "tool", "content", "untrusted", (*path, "output"), False, item, "output")
        elif isinstance(output, list):
            for j, part in enumerate(output):
                if (
                    isinstance(part, dict)
                    and part.get("type") in ("input_text", "output_text")
                    and (ref := ref_at(part, "text", "tool", "content", "untrusted", (*path, "output", j, "text")))
                ):
                    yield ref
    elif kind == "reasoning":
        for field, text_kind in _REASONING_LISTS:
            parts = item.get(field)
            if isinstance(parts, list):
                for j, part in enumerate(parts):
                    key = None if output_index is None else (output_index, text_kind, j)
                    ref = ref_at(part, "text", "assistant", text_kind, "model", (*path, field, j, "text"),
                                 stream_key=key)  # fmt: skip
                    if ref:
                        yield ref


def response_texts(body: dict[str, Any]) -> list[TextRef]:
    output = body.get("output")
    if not isinstance(output, list):
        return []
    return [ref for i, item in enumerate(output) if isinstance(item, dict) for ref in _item(item, ("output", i), i)]


def chunk_texts(event: dict[str, Any]) -> list[TextRef]:
    kind = event.get("type")
    if not isinstance(kind, str):
        return []
    delta = _DELTAS.get(kind)
    if delta is not None:
        text_kind, sub = delta
        index = event.get("output_index", 0)
        sub_index = event.get(sub) if sub else None
        key = (index if isinstance(index, int) else 0, text_kind, sub_index if isinstance(sub_index, int) else None)
        json = text_kind == "tool_arguments"
        ref = ref_at(event, "delta", "assistant", text_kind, "model", ("delta",), json=json, stream_key=key)
        return [ref] if ref else []
    done = _DONE_TEXT.get(kind)
    if done is not None:
        field, text_kind, _ = done
        ref = ref_at(event, field, "assistant", text_kind, "model", (field,), json=text_kind == "tool_arguments")
        return [ref] if ref else []
    if kind in ("response.content_part.added", "response.content_part.done"):
        part = event.get("part")
        if isinstance(part, dict):
            return list(_item({"type": "message", "role": "assistant", "content": [part]}, ("part",), None))
    elif kind in ("response.output_item.added", "response.output_item.done"):
        item = event.get("item")
        if isinstance(item, dict):
            return list(_item(item, ("item",), None))
    elif kind in _WHOLE_RESPONSE:
        response = event.get("response")
        if isinstance(response, dict):
            return [_whole(ref) for ref in response_texts(response)]
    return []


def _whole(ref: TextRef) -> TextRef:
    ref.stream_key = None
    return ref


def chunk_ends(event: dict[str, Any]) -> list[tuple[int | str | None, ...]]:
    kind = event.get("type")
    if kind in _ENDS_ALL:
        return [()]
    if kind == "response.output_item.done" and isinstance(event.get("output_index"), int):
        return [(event["output_index"],)]
    done = _DONE_TEXT.get(kind) if isinstance(kind, str) else None
    if done is not None and isinstance(event.get("output_index"), int):
        _, text_kind, sub = done
        sub_index = event.get(sub) if sub else None
        return [(event["output_index"], text_kind, sub_index if isinstance(sub_index, int) else None)]
    return []


_DELTA_TYPE = {kind: event for event, (kind, _) in _DELTAS.items()}


def delta_chunk(key: StreamKey, text: str, like: dict[str, Any]) -> dict[str, Any]:
    """A ``*.delta`` event for the growing text ``key``, shaped like ``like`` (its last delta event)."""
    index, kind, _ = key
    event: dict[str, Any] = {"type": _DELTA_TYPE.get(kind, "response.output_text.delta")}
    for name in ("item_id", "output_index", "content_index", "summary_index", "logprobs", "obfuscation"):
        if name in like:
            event[name] = [] if name == "logprobs" else "" if name == "obfuscation" else like[name]
    event.setdefault("output_index", index)
    event["delta"] = text
    event["sequence_number"] = like.get("sequence_number", 0)  # the chain renumbers the stream's events
    return event
