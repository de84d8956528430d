"""``POST /v1/chat/completions``: text, tool calls and JSON mode, streamed or not."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .calls import cut_body, int_param, json_response, open_call, read_json, require_model, usage
from .content import Answer, chat_prompt_tokens, distort_json, json_content, last_user_text, plan_chat
from .errors import invalid_request
from .sse import ChunkTemplate, dumps, finish_json, send_stream

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
MAX_CHOICES = 128


async def chat_completions(request: web.Request) -> web.StreamResponse:
    """Answer a chat completion deterministically from the request (see :mod:`backends.mock.content`)."""
    body = await read_json(request)
    model = require_model(body)
    messages = _messages(body)
    n = int_param(body, "n", 1, 1, MAX_CHOICES) or 1
    for name in ("max_tokens", "max_completion_tokens"):
        int_param(body, name, None, 1, 1 << 31)
    call = open_call(request, body, [last_user_text(messages)], "messages")
    answer = plan_chat(body, call.fault.tokens)
    fault = call.fault
    if (fault.bad_json or fault.wrong_json or fault.fence_json) and (
        answer.tool is not None or json_content(body.get("response_format"), "") is not None
    ):  # [verify] JSON answers spoiled on request (schema repair tests)
        answer = distort_json(answer, bad=fault.bad_json, wrong=fault.wrong_json, fence=fault.fence_json)
    await call.enter()
    if call.fault.drop_after is not None and not call.stream:
        return call.drop()
    prompt_tokens = chat_prompt_tokens(messages, body.get("tools"))
    completion_id = call.state.new_id("chatcmpl-")
    call_ids = [call.state.new_id("call_") for _ in range(n)] if answer.tool else []
    created = int(time.time())
    totals = usage(prompt_tokens, n * len(answer.pieces))
    if call.stream:
        template = ChunkTemplate(
            id_=completion_id,
            object_="chat.completion.chunk",
            created=created,
            model=model,
            include_usage=call.include_usage,
        )
        return await send_stream(call, _events(template, answer, n, call_ids, totals if call.include_usage else None))
    response = json_response(
        {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": model,
            "choices": [_choice(answer, index, call_ids) for index in range(n)],
            "usage": totals,
            "service_tier": "default",
            "system_fingerprint": "fp_mock",
        }
    )
    if call.fault.cut_body:  # [reliability]
        return await cut_body(call, response)
    return response


def _messages(body: dict[str, Any]) -> list[Any]:
    messages = body.get("messages")
    if messages is None:
        raise invalid_request("Missing required parameter: 'messages'.", "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise invalid_request("Invalid 'messages': expected a non-empty array of messages.", "messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            param = f"messages[{index}].role"
            raise invalid_request(f"Invalid value for '{param}': expected one of {sorted(_ROLES)}.", param)
    return messages


def _choice(answer: Answer, index: int, call_ids: list[str]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.text, "refusal": None, "annotations": []}
    if answer.tool is not None:
        message["content"] = None
        function = {"name": answer.tool, "arguments": answer.text}
        message["tool_calls"] = [{"id": call_ids[index], "type": "function", "function": function}]
    return {"index": index, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}


def _events(
    template: ChunkTemplate, answer: Answer, n: int, call_ids: list[str], totals: dict[str, Any] | None
) -> list[bytes]:
    """Role chunk, one chunk per piece, a finish chunk (per choice), then the optional usage chunk."""
    events: list[bytes] = []
    for index in range(n):
        if answer.tool is not None:
            function = {"name": answer.tool, "arguments": ""}
            call = {"index": 0, "id": call_ids[index], "type": "function", "function": function}
            first = {"role": "assistant", "content": None, "tool_calls": [call], "refusal": None}
            delta_format = '{"tool_calls":[{"index":0,"function":{"arguments":%s}}]}'
        else:
            first = {"role": "assistant", "content": "", "refusal": None}
            delta_format = '{"content":%s}'
        events.append(template.chunk(_chunk_choice(index, dumps(first), None)))
        events.extend(template.chunk(_chunk_choice(index, delta_format % dumps(p), None)) for p in answer.pieces)
        events.append(template.chunk(_chunk_choice(index, "{}", answer.finish_reason)))
    if totals is not None:
        events.append(template.usage_chunk(totals))
    return events


def _chunk_choice(index: int, delta_json: str, finish_reason: str | None) -> str:
    return f'{{"index":{index},"delta":{delta_json},"logprobs":null,"finish_reason":{finish_json(finish_reason)}}}'
