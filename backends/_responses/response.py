"""A chat completion → a Responses API ``response`` object, and the item builders the stream shares.

The envelope echoes the request as OpenAI does (instructions, tools as sent, tool_choice, text,
sampling, metadata, store, previous_response_id); the output items come from the first choice.
"""

from __future__ import annotations

import secrets
from typing import Any

# finish_reason → incomplete_details.reason; any other finish_reason completes the response
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
_ECHOED = (
    "max_output_tokens", "max_tool_calls", "previous_response_id", "prompt_cache_key", "safety_identifier",
    "top_logprobs", "user", "service_tier", "prompt_cache_retention",
)  # fmt: skip


def new_id(prefix: str) -> str:
    """An item id in OpenAI's style: ``msg_``, ``fc_``, ``rs_`` followed by random hex."""
    return f"{prefix}_{secrets.token_hex(24)}"


def reasoning_of(message: dict[str, Any]) -> str | None:
    """The reasoning text vLLM, SGLang, llama.cpp and Ollama put beside the answer, under either name."""
    text = message.get("reasoning_content")
    if not isinstance(text, str):
        text = message.get("reasoning")
    return text if isinstance(text, str) and text else None


def envelope(
    request: dict[str, Any], *, response_id: str, created_at: int, model: str | None, status: str
) -> dict[str, Any]:
    """The Response object around the output: what the client asked for, echoed, with OpenAI's defaults."""
    reasoning = request.get("reasoning")
    if not isinstance(reasoning, dict):
        reasoning = {}
    response: dict[str, Any] = {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "metadata": request.get("metadata") or {},
        "model": model or request.get("model") or "",
        "output": [],
        "parallel_tool_calls": request.get("parallel_tool_calls", True),
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "store": request.get("store", True),
        "temperature": request.get("temperature", 1.0),
        "text": request.get("text") or {"format": {"type": "text"}},
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": request.get("tools") or [],
        "top_p": request.get("top_p", 1.0),
        "truncation": request.get("truncation", "disabled"),
        "usage": None,
    }
    for name in _ECHOED:
        response[name] = request.get(name)
    return response


def finish(response: dict[str, Any], finish_reason: str | None, usage: dict[str, Any] | None) -> None:
    """Set the final status, ``incomplete_details`` and usage of ``response`` in place."""
    reason = _INCOMPLETE.get(finish_reason or "")
    response["status"] = "incomplete" if reason else "completed"
    response["incomplete_details"] = {"reason": reason} if reason else None
    response["usage"] = convert_usage(usage)


def convert_usage(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """Chat usage (prompt/completion tokens and their details) → Responses usage."""
    if not isinstance(usage, dict):
        return None
    prompt = int(usage.get("prompt_tokens") or 0)
    completion = int(usage.get("completion_tokens") or 0)
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return {
        "input_tokens": prompt,
        "input_tokens_details": {
            "cached_tokens": int(prompt_details.get("cached_tokens") or 0),
            "cache_write_tokens": int(prompt_details.get("cache_write_tokens") or 0),
        },
        "output_tokens": completion,
        "output_tokens_details": {"reasoning_tokens": int(completion_details.get("reasoning_tokens") or 0)},
        "total_tokens": int(usage.get("total_tokens") or prompt + completion),
    }


def reasoning_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": text}],
        "status": status,
    }


def text_part(text: str, logprobs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def refusal_part(refusal: str) -> dict[str, Any]:
    return {"type": "refusal", "refusal": refusal}


def message_item(item_id: str, content: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {"id": item_id, "type": "message", "status": status, "role": "assistant", "content": content}


def function_call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def convert_logprobs(choice_logprobs: Any) -> list[dict[str, Any]]:
    """Chat ``choice.logprobs.content`` → output_text logprobs (the same token/logprob/bytes/top shape)."""
    content = choice_logprobs.get("content") if isinstance(choice_logprobs, dict) else None
    out: list[dict[str, Any]] = []
    for entry in content or []:
        top = [
            {"token": t.get("token", ""), "logprob": t.get("logprob", 0.0), "bytes": t.get("bytes") or []}
            for t in entry.get("top_logprobs") or []
        ]
        out.append(
            {
                "token": entry.get("token", ""),
                "logprob": entry.get("logprob", 0.0),
                "bytes": entry.get("bytes") or [],
                "top_logprobs": top,
            }
        )
    return out


def from_chat(chat: dict[str, Any], request: dict[str, Any], *, response_id: str, created_at: int) -> dict[str, Any]:
    """A whole chat completion → the Response object a Responses API client expects."""
    choices = chat.get("choices") or [{}]
    choice = choices[0]
    message = choice.get("message") or {}
    finish_reason = choice.get("finish_reason")
    item_status = "incomplete" if finish_reason in _INCOMPLETE else "completed"
    response = envelope(request, response_id=response_id, created_at=created_at, model=chat.get("model"), status="")
    output: list[dict[str, Any]] = response["output"]
    if (reasoning := reasoning_of(message)) is not None:
        output.append(reasoning_item(new_id("rs"), reasoning, item_status))
    content: list[dict[str, Any]] = []
    if isinstance(message.get("content"), str) and message["content"]:
        content.append(text_part(message["content"], convert_logprobs(choice.get("logprobs"))))
    if isinstance(message.get("refusal"), str) and message["refusal"]:
        content.append(refusal_part(message["refusal"]))
    calls = [c for c in message.get("tool_calls") or [] if isinstance(c, dict)]
    if content or not (calls or output):
        output.append(message_item(new_id("msg"), content or [text_part("")], item_status))
    for call in calls:
        function = call.get("function") or {}
        call_id = call.get("id") or new_id("call")
        name, arguments = str(function.get("name") or ""), str(function.get("arguments") or "")
        output.append(function_call_item(new_id("fc"), call_id, name, arguments, item_status))
    finish(response, finish_reason, chat.get("usage"))
    return response
