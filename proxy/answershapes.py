"""Answer shapes per endpoint: a stream's chunks assembled into the whole answer, and an answer as stream events.

``assemble(endpoint, chunks)`` builds what the endpoint returns without ``stream``: a ``chat.completion``
(content, refusal and tool calls merged by index), a ``text_completion``, the Responses ``response`` of the
stream's final event, an Anthropic ``message`` (text, ``tool_use`` input parsed from its JSON deltas,
thinking). ``synthesize(endpoint, answer)`` is the reverse: the events a stream of that answer carries
(the whole text of each choice, item or block in one delta), used by ``proxy.wholeanswer`` to replay an
answer a plugin changed.
"""

from __future__ import annotations

import json
from typing import Any

_FINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})


def assemble(endpoint: str, chunks: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The whole answer the ``chunks`` of one stream carried, or None when they carry none."""
    if not chunks:
        return None
    if endpoint == "responses":
        final = [c["response"] for c in chunks if c.get("type") in _FINAL and isinstance(c.get("response"), dict)]
        return final[-1] if final else None
    if endpoint == "messages":
        return _assemble_message(chunks)
    return _assemble_choices(endpoint, chunks)


def _assemble_choices(endpoint: str, chunks: list[dict[str, Any]]) -> dict[str, Any]:
    first = chunks[0]
    answer: dict[str, Any] = {
        "id": first.get("id"),
        "object": "chat.completion" if endpoint == "chat" else "text_completion",
        "created": first.get("created"),
        "model": first.get("model"),
    }
    if first.get("system_fingerprint") is not None:
        answer["system_fingerprint"] = first["system_fingerprint"]
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            if isinstance(choice, dict):
                _merge_choice(endpoint, choices, choice)
        if isinstance(chunk.get("usage"), dict):
            answer["usage"] = chunk["usage"]
    answer["choices"] = [_finish_choice(endpoint, choices[i]) for i in sorted(choices)]
    return answer


def _merge_choice(endpoint: str, choices: dict[int, dict[str, Any]], choice: dict[str, Any]) -> None:
    index = choice.get("index", 0) if isinstance(choice.get("index", 0), int) else 0
    into = choices.setdefault(index, {"index": index, "parts": {}, "tools": {}, "finish_reason": None})
    if choice.get("finish_reason"):
        into["finish_reason"] = choice["finish_reason"]
    if endpoint != "chat":
        if isinstance(choice.get("text"), str):
            into["parts"]["text"] = into["parts"].get("text", "") + choice["text"]
        return
    delta = choice.get("delta")
    if not isinstance(delta, dict):
        return
    if isinstance(delta.get("role"), str):
        into["role"] = delta["role"]
    for field in ("content", "refusal", "reasoning_content"):
        if isinstance(delta.get(field), str):
            into["parts"][field] = into["parts"].get(field, "") + delta[field]
    for call in delta.get("tool_calls") or ():
        if isinstance(call, dict):
            _merge_call(into["tools"], call)


def _merge_call(tools: dict[int, dict[str, Any]], call: dict[str, Any]) -> None:
    index = call.get("index", len(tools)) if isinstance(call.get("index"), int) else len(tools)
    into = tools.setdefault(index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    if call.get("id"):
        into["id"] = call["id"]
    if call.get("type"):
        into["type"] = call["type"]
    function = call.get("function")
    if isinstance(function, dict):
        for field in ("name", "arguments"):
            if isinstance(function.get(field), str):
                into["function"][field] += function[field]


def _finish_choice(endpoint: str, into: dict[str, Any]) -> dict[str, Any]:
    parts = into["parts"]
    if endpoint != "chat":
        return {"index": into["index"], "text": parts.get("text", ""), "logprobs": None,
                "finish_reason": into["finish_reason"]}  # fmt: skip
    message: dict[str, Any] = {"role": into.get("role", "assistant"), "content": parts.get("content")}
    for field in ("refusal", "reasoning_content"):
        if field in parts:
            message[field] = parts[field]
    if into["tools"]:
        message["tool_calls"] = [into["tools"][i] for i in sorted(into["tools"])]
    return {"index": into["index"], "message": message, "logprobs": None, "finish_reason": into["finish_reason"]}


def _assemble_message(events: list[dict[str, Any]]) -> dict[str, Any] | None:
    message: dict[str, Any] | None = None
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    for event in events:
        kind = event.get("type")
        index = event["index"] if isinstance(event.get("index"), int) else 0
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = dict(event["message"])
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            blocks[index] = dict(event["content_block"])
        elif kind == "content_block_delta" and isinstance(event.get("delta"), dict):
            _merge_block_delta(blocks.setdefault(index, {"type": "text", "text": ""}), event["delta"], partial, index)
        elif kind == "message_delta" and message is not None:
            delta = event.get("delta")
            if isinstance(delta, dict):
                message.update({k: v for k, v in delta.items() if k in ("stop_reason", "stop_sequence")})
            if isinstance(event.get("usage"), dict):
                message["usage"] = {**(message.get("usage") or {}), **event["usage"]}
    if message is None:
        return None
    for index, text in partial.items():
        try:
            blocks[index]["input"] = json.loads(text) if text else {}
        except ValueError:
            blocks[index]["input"] = text  # kept as the model wrote it, for a plugin to judge
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message


def _merge_block_delta(block: dict[str, Any], delta: dict[str, Any], partial: dict[int, str], index: int) -> None:
    kind = delta.get("type")
    if kind == "text_delta":
        block["text"] = block.get("text", "") + str(delta.get("text", ""))
    elif kind == "input_json_delta":
        partial[index] = partial.get(index, "") + str(delta.get("partial_json", ""))
    elif kind == "thinking_delta":
        block["thinking"] = block.get("thinking", "") + str(delta.get("thinking", ""))
    elif kind == "signature_delta":
        block["signature"] = str(delta.get("signature", ""))


# ---- the reverse: events for a whole answer ---------------------------------------------------


def synthesize(endpoint: str, answer: dict[str, Any], *, usage_chunk: bool) -> list[dict[str, Any]]:
    """The stream events that carry ``answer``; ``usage_chunk``: end a chat/completions stream with usage."""
    if endpoint == "responses":
        return _response_events(answer)
    if endpoint == "messages":
        return _message_events(answer)
    return _choice_chunks(endpoint, answer, usage_chunk)


def _choice_chunks(endpoint: str, answer: dict[str, Any], usage_chunk: bool) -> list[dict[str, Any]]:
    head: dict[str, Any] = {k: answer[k] for k in ("id", "created", "model", "system_fingerprint") if k in answer}
    head["object"] = "chat.completion.chunk" if endpoint == "chat" else "text_completion"
    chunks = []
    for choice in answer.get("choices") or ():
        index = choice.get("index", 0)
        if endpoint == "chat":
            message = choice.get("message") or {}
            delta: dict[str, Any] = {"role": message.get("role", "assistant"), "content": message.get("content")}
            for field in ("refusal", "reasoning_content"):
                if message.get(field) is not None:
                    delta[field] = message[field]
            if message.get("tool_calls"):
                delta["tool_calls"] = [{"index": i, **call} for i, call in enumerate(message["tool_calls"])]
            first: dict[str, Any] = {"index": index, "delta": delta, "logprobs": None, "finish_reason": None}
            chunks.append({**head, "choices": [first]})
            end: dict[str, Any] = {"index": index, "delta": {}, "logprobs": None}
            end["finish_reason"] = choice.get("finish_reason")
        else:
            text = {"index": index, "text": choice.get("text", ""), "logprobs": None, "finish_reason": None}
            chunks.append({**head, "choices": [text]})
            end = {"index": index, "text": "", "logprobs": None, "finish_reason": choice.get("finish_reason")}
        chunks.append({**head, "choices": [end]})
    if usage_chunk and isinstance(answer.get("usage"), dict):
        chunks.append({**head, "choices": [], "usage": answer["usage"]})
    return chunks


def _response_events(answer: dict[str, Any]) -> list[dict[str, Any]]:
    start = {**answer, "status": "in_progress", "output": []}
    start.pop("usage", None)
    events: list[dict[str, Any]] = [{"type": "response.created", "response": start}]
    for out_index, item in enumerate(answer.get("output") or ()):
        added = {**item, "status": "in_progress"}
        if item.get("type") == "message":
            added["content"] = []
        events.append({"type": "response.output_item.added", "output_index": out_index, "item": added})
        if item.get("type") == "message":
            for part_index, part in enumerate(item.get("content") or ()):
                events.extend(_part_events(item, out_index, part_index, part))
        events.append({"type": "response.output_item.done", "output_index": out_index, "item": item})
    final = "response.completed" if answer.get("status") in (None, "completed") else f"response.{answer['status']}"
    events.append({"type": final if final in _FINAL else "response.completed", "response": answer})
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def _part_events(item: dict[str, Any], out_index: int, part_index: int, part: dict[str, Any]) -> list[dict[str, Any]]:
    where = {"item_id": item.get("id"), "output_index": out_index, "content_index": part_index}
    empty = {**part, "text": ""} if "text" in part else part
    events = [{"type": "response.content_part.added", **where, "part": empty}]
    if part.get("type") == "output_text":
        events.append({"type": "response.output_text.delta", **where, "delta": part.get("text", "")})
        events.append({"type": "response.output_text.done", **where, "text": part.get("text", "")})
    events.append({"type": "response.content_part.done", **where, "part": part})
    return events


def _message_events(answer: dict[str, Any]) -> list[dict[str, Any]]:
    usage = dict(answer.get("usage") or {})
    start = {**answer, "content": [], "stop_reason": None, "stop_sequence": None}
    start["usage"] = {**usage, "output_tokens": 0}
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    for index, block in enumerate(answer.get("content") or ()):
        kind = block.get("type")
        if kind == "tool_use":
            events.append({"type": "content_block_start", "index": index, "content_block": {**block, "input": {}}})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block.get("input", {}))}
        elif kind == "thinking":
            events.append({"type": "content_block_start", "index": index, "content_block": {**block, "thinking": ""}})
            delta = {"type": "thinking_delta", "thinking": block.get("thinking", "")}
        else:
            events.append({"type": "content_block_start", "index": index, "content_block": {**block, "text": ""}})
            delta = {"type": "text_delta", "text": block.get("text", "")}
        events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    stop = {"stop_reason": answer.get("stop_reason"), "stop_sequence": answer.get("stop_sequence")}
    events.append({"type": "message_delta", "delta": stop, "usage": {"output_tokens": usage.get("output_tokens", 0)}})
    events.append({"type": "message_stop"})
    return events
