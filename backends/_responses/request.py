"""A Responses API request body → a chat completions request body, for backends that speak only chat.

What chat completions cannot express (built-in tools, background runs, conversations, item
references, files) is refused with a 400 naming the param and the backend, never silently dropped.
Fields with no chat meaning (store, metadata, include, …) are dropped; fields this module does not
know (engine extensions such as ``top_k``) pass through, as everywhere else in the proxy.
"""

from __future__ import annotations

from typing import Any

from proxy.errors import InvalidRequest

# Responses request fields this module consumes or deliberately drops; anything else passes through.
_HANDLED = frozenset(
    {
        "model", "input", "instructions", "tools", "tool_choice", "text", "max_output_tokens", "temperature",
        "top_p", "parallel_tool_calls", "top_logprobs", "user", "safety_identifier", "reasoning", "stream",
        "background", "conversation", "prompt",
        # no chat meaning: dropped
        "store", "metadata", "include", "truncation", "service_tier", "prompt_cache_key", "prompt_cache_retention",
        "prompt_cache_options", "stream_options", "previous_response_id", "max_tool_calls", "context_management",
        "background_options", "access_programs", "moderation", "image", "n",
    }
)  # fmt: skip
_CHAT_DETAILS = frozenset({"auto", "low", "high"})
_TEXT_PARTS = frozenset({"input_text", "output_text", "text", "summary_text", "reasoning_text"})
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def unsupported(param: str, what: str, backend: str) -> InvalidRequest:
    """The 400 for something chat completions cannot carry: names the param, the backend and the way out."""
    return InvalidRequest(
        f"{what} cannot run on backend {backend!r}: it speaks only chat completions. "
        "Remove it or route this model to a backend that speaks the Responses API.",
        param=param,
        code="unsupported_on_backend",
    )


def to_chat(body: dict[str, Any], *, backend: str) -> dict[str, Any]:
    """Translate a (validated) Responses request body into a chat completions body for ``backend``."""
    if body.get("background") is True:
        raise unsupported("background", "Background responses ('background': true)", backend)
    for name in ("conversation", "prompt"):
        if body.get(name) is not None:
            raise unsupported(name, f"The '{name}' parameter", backend)
    chat: dict[str, Any] = {key: value for key, value in body.items() if key not in _HANDLED}
    chat["model"] = body.get("model")
    chat["messages"] = _messages(body, backend)
    tools = _tools(body.get("tools") or [], backend)
    if body.get("tool_choice") is not None:
        tools, chat["tool_choice"] = _tool_choice(body["tool_choice"], tools, backend)
    if tools:
        chat["tools"] = tools
        if body.get("parallel_tool_calls") is not None:
            chat["parallel_tool_calls"] = body["parallel_tool_calls"]
    if (response_format := _response_format(body.get("text"))) is not None:
        chat["response_format"] = response_format
    _sampling(body, chat)
    return chat


def _sampling(body: dict[str, Any], chat: dict[str, Any]) -> None:
    for name in ("temperature", "top_p"):
        if body.get(name) is not None:
            chat[name] = body[name]
    if body.get("max_output_tokens") is not None:
        chat["max_tokens"] = body["max_output_tokens"]
    wants_logprobs = "message.output_text.logprobs" in (body.get("include") or ())
    if body.get("top_logprobs") is not None:
        chat["logprobs"] = True
        chat["top_logprobs"] = body["top_logprobs"]
    elif wants_logprobs:
        chat["logprobs"] = True
    user = body.get("safety_identifier") or body.get("user")
    if user is not None:
        chat["user"] = user
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort") is not None:
        chat["reasoning_effort"] = reasoning["effort"]
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}


# ---------------------------------------------------------------- input items → messages


def _messages(body: dict[str, Any], backend: str) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if isinstance(body.get("instructions"), str):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
        return messages
    for i, item in enumerate(items or []):
        _item(item, f"input[{i}]", messages, backend)
    return messages


def _item(item: dict[str, Any], param: str, messages: list[dict[str, Any]], backend: str) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        message = _message(item, param, backend)
        last = messages[-1] if messages else None
        if message["role"] == "system" and last is not None and last["role"] == "system" and _both_text(last, message):
            last["content"] += "\n\n" + message["content"]  # many templates allow one system message only
        else:
            messages.append(message)
    elif kind == "function_call":
        call = {
            "id": item.get("call_id"),
            "type": "function",
            "function": {"name": item.get("name"), "arguments": item.get("arguments") or ""},
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":  # merge parallel calls and text-then-call turns
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        content = _tool_output(item.get("output"), f"{param}.output", backend)
        messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": content})
    elif kind == "reasoning":
        return  # chat completions has no place for earlier reasoning; engines re-derive it
    elif kind == "item_reference":
        raise unsupported(f"{param}.type", "An 'item_reference' input item", backend)
    else:
        raise unsupported(f"{param}.type", f"An input item of type {kind!r}", backend)


def _message(item: dict[str, Any], param: str, backend: str) -> dict[str, Any]:
    role = _ROLES.get(str(item.get("role")), "user")
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    parts = [_part(part, f"{param}.content[{j}]", backend) for j, part in enumerate(content or [])]
    if all(p["type"] == "text" for p in parts) and (role != "user" or len(parts) == 1):
        return {"role": role, "content": _joined(parts)}  # plain strings suit every engine's chat template
    return {"role": role, "content": parts}


def _part(part: dict[str, Any], param: str, backend: str) -> dict[str, Any]:
    kind = part.get("type")
    if kind in _TEXT_PARTS:
        return {"type": "text", "text": part.get("text", "")}
    if kind == "refusal":  # the model's own earlier refusal: engines see it as what the assistant said
        return {"type": "text", "text": part.get("refusal", "")}
    if kind == "input_image":
        if not isinstance(part.get("image_url"), str):
            raise unsupported(f"{param}.file_id", "An image given by 'file_id'", backend)
        image: dict[str, Any] = {"url": part["image_url"]}
        if part.get("detail") in _CHAT_DETAILS:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        raise unsupported(f"{param}.type", "An 'input_file' content part", backend)
    raise unsupported(f"{param}.type", f"A content part of type {kind!r}", backend)


def _both_text(first: dict[str, Any], second: dict[str, Any]) -> bool:
    return isinstance(first["content"], str) and isinstance(second["content"], str)


def _joined(parts: list[dict[str, Any]]) -> str:
    return "\n".join(str(p.get("text", "")) for p in parts)


def _tool_output(output: Any, param: str, backend: str) -> str:
    if isinstance(output, str):
        return output
    texts: list[str] = []
    for j, part in enumerate(output or []):
        if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
            kind = part.get("type") if isinstance(part, dict) else None
            raise unsupported(f"{param}[{j}].type", f"A function_call_output part of type {kind!r}", backend)
        texts.append(str(part.get("text", "")))
    return "".join(texts)


# ---------------------------------------------------------------- tools, tool_choice, text.format


def _tools(tools: list[dict[str, Any]], backend: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        kind = tool.get("type")
        if kind != "function":
            raise unsupported(f"tools[{i}].type", f"The built-in tool {kind!r}", backend)
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: Any, tools: list[dict[str, Any]], backend: str) -> tuple[list[dict[str, Any]], Any]:
    """The chat ``tool_choice`` and the tools it leaves (``allowed_tools`` narrows the list)."""
    if isinstance(choice, str):
        return tools, choice
    kind = choice.get("type")
    if kind == "function":
        return tools, {"type": "function", "function": {"name": choice.get("name")}}
    if kind == "allowed_tools":
        allowed = choice.get("tools") or []
        for j, entry in enumerate(allowed):
            if entry.get("type") != "function":
                raise unsupported(f"tool_choice.tools[{j}].type", f"The built-in tool {entry.get('type')!r}", backend)
        names = {entry.get("name") for entry in allowed}
        kept = [tool for tool in tools if tool["function"].get("name") in names]
        return kept, "required" if choice.get("mode") == "required" else "auto"
    raise unsupported("tool_choice.type", f"A tool_choice naming the built-in tool {kind!r}", backend)


def _response_format(text: Any) -> dict[str, Any] | None:
    fmt = text.get("format") if isinstance(text, dict) else None
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt["type"] == "json_schema":
        spec = {k: fmt[k] for k in ("name", "schema", "strict", "description") if fmt.get(k) is not None}
        return {"type": "json_schema", "json_schema": spec}
    return {"type": fmt["type"]}
