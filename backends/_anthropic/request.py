"""An OpenAI chat completions request, translated into an Anthropic Messages request (for ``type: anthropic``).

The reverse of ``proxy.messages_chat`` (Messages clients on chat backends); where it can, it undoes
that module's choices, so a round trip keeps what both APIs carry. Choices made where they differ:

- ``system`` and ``developer`` messages, wherever they stand, become the top-level ``system`` (joined by
  a blank line, in order): Messages has no system turn.
- ``tool`` messages become ``tool_result`` blocks of a user turn; the user text that follows joins that
  turn (Messages wants user and assistant to alternate).
- An assistant's ``tool_calls`` become ``tool_use`` blocks; ``arguments`` that are not a JSON object
  travel as ``{RAW_ARGUMENTS_KEY: "<arguments>"}`` (``backends._messages.response.tool_input``).
- ``max_tokens`` (or ``max_completion_tokens``) is required by Messages: ``DEFAULT_MAX_TOKENS`` when the
  client gives none. ``stop`` → ``stop_sequences``, ``user`` → ``metadata.user_id``,
  ``parallel_tool_calls: false`` → ``disable_parallel_tool_use``.
- Refused with a 400 naming the param, since the answer could not be what the client asked for:
  ``n`` > 1, ``logprobs``, ``response_format`` other than text, ``temperature`` above 1 (Messages'
  range is 0 to 1), audio and file content parts, non-function tools. Fields with no counterpart and no
  visible effect on the answer's shape (``seed``, ``presence_penalty``, ``frequency_penalty``,
  ``logit_bias``, ``reasoning_effort``, ``stream_options``) are not forwarded.
"""

from __future__ import annotations

from typing import Any

from backends._messages.response import tool_input
from proxy.errors import InvalidRequest

DEFAULT_MAX_TOKENS = 4096
_SYSTEM_ROLES = frozenset({"system", "developer"})
_REFUSED_FLAGS = ("logprobs", "top_logprobs", "audio", "prediction")


def _refuse(param: str, what: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {what}", param=param, code="unsupported_value")


def _text(content: Any, param: str) -> str:
    """A string, or the texts of content parts joined (anything but text refused)."""
    if content is None or isinstance(content, str):
        return content or ""
    texts = []
    for i, part in enumerate(content):
        if part.get("type") != "text":
            raise _refuse(f"{param}[{i}].type", f"only text parts are supported here, got {part.get('type')!r}")
        texts.append(part.get("text", ""))
    return "\n\n".join(texts)


def _image(part: dict[str, Any], param: str) -> dict[str, Any]:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str):
        raise _refuse(f"{param}.image_url.url", "expected a URL string")
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        media_type = header.removeprefix("data:").removesuffix(";base64")
        if not header.endswith(";base64") or not data:
            raise _refuse(f"{param}.image_url.url", "a data URL image must be base64-encoded")
        return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}
    return {"type": "image", "source": {"type": "url", "url": url}}


def _user_blocks(content: Any, param: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    blocks = []
    for i, part in enumerate(content or ()):
        kind = part.get("type")
        if kind == "text":
            blocks.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            blocks.append(_image(part, f"{param}[{i}]"))
        else:
            raise _refuse(f"{param}[{i}].type", f"{kind!r} content parts are not supported by Anthropic backends")
    return blocks


def _assistant_blocks(message: dict[str, Any], param: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    text = _text(message.get("content"), f"{param}.content")
    if text:
        blocks.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        blocks.append(
            {
                "type": "tool_use",
                "id": call.get("id"),
                "name": function.get("name"),
                "input": tool_input(function.get("arguments")),
            }
        )
    return blocks


def _turns(messages: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """The system texts, and the turns with consecutive same-role content merged."""
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role, param = message.get("role"), f"messages[{i}]"
        if role in _SYSTEM_ROLES:
            system.append(_text(message.get("content"), f"{param}.content"))
            continue
        if role == "tool":
            content = _text(message.get("content"), f"{param}.content")
            blocks = [{"type": "tool_result", "tool_use_id": message.get("tool_call_id"), "content": content}]
            role = "user"
        elif role == "user":
            blocks = _user_blocks(message.get("content"), f"{param}.content")
        elif role == "assistant":
            blocks = _assistant_blocks(message, param)
        else:
            raise _refuse(f"{param}.role", f"role {role!r} is not supported by Anthropic backends")
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(tools):
        if tool.get("type", "function") != "function":
            raise _refuse(f"tools[{i}].type", f"tool type {tool.get('type')!r} is not supported: define a function")
        function = tool.get("function") or {}
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        spec: dict[str, Any] = {"name": function.get("name"), "input_schema": schema}
        if function.get("description") is not None:
            spec["description"] = function["description"]
        if isinstance(function.get("strict"), bool):
            spec["strict"] = function["strict"]
        out.append(spec)
    return out


def _tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    if isinstance(choice, dict):
        out: dict[str, Any] = {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    elif choice in ("auto", "none"):
        out = {"type": choice}
    elif choice == "required":
        out = {"type": "any"}
    elif choice is None and parallel is False:
        out = {"type": "auto"}
    else:
        return None
    if parallel is False and out["type"] != "none":
        out["disable_parallel_tool_use"] = True
    return out


def _check(body: dict[str, Any]) -> None:
    if isinstance(body.get("n"), int) and body["n"] > 1:
        raise _refuse("n", "Anthropic backends give one choice per request")
    for flag in _REFUSED_FLAGS:
        if body.get(flag):
            raise _refuse(flag, f"{flag!r} is not available from Anthropic backends")
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        raise _refuse("response_format", f"{response_format.get('type')!r} is not available from Anthropic backends")
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and temperature > 1:
        raise _refuse("temperature", f"Anthropic backends take 0 to 1, got {temperature}")


def to_messages(body: dict[str, Any]) -> dict[str, Any]:
    """The Messages request for a (validated) chat request; ``InvalidRequest`` (400) for what it cannot carry."""
    _check(body)
    system, turns = _turns(body.get("messages") or [])
    out: dict[str, Any] = {"model": body.get("model"), "messages": turns}
    max_tokens = body.get("max_completion_tokens") or body.get("max_tokens")
    out["max_tokens"] = max_tokens if isinstance(max_tokens, int) else DEFAULT_MAX_TOKENS
    if system:
        out["system"] = "\n\n".join(system)
    for key in ("temperature", "top_p", "top_k"):
        if body.get(key) is not None:
            out[key] = body[key]
    stop = body.get("stop")
    if stop:
        out["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(body.get("user"), str) and body["user"]:
        out["metadata"] = {"user_id": body["user"]}
    if body.get("tools"):
        out["tools"] = _tools(body["tools"])
        choice = _tool_choice(body.get("tool_choice"), body.get("parallel_tool_calls"))
        if choice is not None:
            out["tool_choice"] = choice
    if body.get("stream") is True:
        out["stream"] = True
    return out
