"""Check client requests against the OpenAI shapes before anything is forwarded.

Only what the OpenAI API would itself reject is refused here, with a 400 whose ``param`` names
the field (``messages[1].role``). Fields Chaperone does not know pass through untouched.
Hand-written checks, not a schema library: this runs on every request.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from proxy.errors import InvalidRequest

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_Check = Callable[[Any, str], None]


def _fail(param: str, what: str) -> None:
    raise InvalidRequest(f"Invalid value for '{param}': {what}", param=param, code="invalid_value")


def _number(lo: float | None = None, hi: float | None = None) -> _Check:
    def check(value: Any, param: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            _fail(param, f"expected a number, got {_kind(value)}")
        if not math.isfinite(value):  # json.loads accepts NaN and Infinity; no upstream does
            _fail(param, f"expected a finite number, got {value}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            _fail(param, f"must be between {lo} and {hi}, got {value}" if hi is not None else f"must be ≥ {lo}")

    return check


def _integer(lo: int | None = None, hi: int | None = None) -> _Check:
    def check(value: Any, param: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            _fail(param, f"expected an integer, got {_kind(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            _fail(
                param,
                f"must be between {lo} and {hi}, got {value}" if hi is not None else f"must be ≥ {lo}, got {value}",
            )

    return check


def _of(*types: type, name: str) -> _Check:
    def check(value: Any, param: str) -> None:
        if isinstance(value, bool) and bool not in types:
            _fail(param, f"expected {name}, got a boolean")
        if not isinstance(value, types):
            _fail(param, f"expected {name}, got {_kind(value)}")

    return check


def _stop(value: Any, param: str) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list) or len(value) > 4 or not all(isinstance(s, str) for s in value):
        _fail(param, "expected a string or a list of up to 4 strings")


def _choice(*allowed: str) -> _Check:
    def check(value: Any, param: str) -> None:
        if value not in allowed:
            _fail(param, f"must be one of {', '.join(allowed)}, got {value!r}")

    return check


_boolean = _of(bool, name="a boolean")
_string = _of(str, name="a string")
_object = _of(dict, name="an object")

_SAMPLING: dict[str, _Check] = {
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "n": _integer(1, 128),
    "max_tokens": _integer(1),
    "presence_penalty": _number(-2, 2),
    "frequency_penalty": _number(-2, 2),
    "stream": _boolean,
    "stream_options": _object,
    "stop": _stop,
    "seed": _integer(),
    "logit_bias": _object,
    "user": _string,
    "logprobs": _boolean,
}
_CHAT: dict[str, _Check] = {
    **_SAMPLING,
    "max_completion_tokens": _integer(1),
    "top_logprobs": _integer(0, 20),
    "parallel_tool_calls": _boolean,
    "response_format": _object,
    "metadata": _object,
    "store": _boolean,
}
_COMPLETIONS: dict[str, _Check] = {
    **_SAMPLING,
    "logprobs": _integer(0, 5),
    "echo": _boolean,
    "best_of": _integer(1, 20),
}
_COMPLETIONS["suffix"] = _of(str, type(None), name="a string")
_EMBEDDINGS: dict[str, _Check] = {
    "encoding_format": _choice("float", "base64"),
    "dimensions": _integer(1),
    "user": _string,
}


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _params(body: dict[str, Any], checks: dict[str, _Check]) -> None:
    for key, value in body.items():  # requests carry few parameters: walk them, not every known check
        if value is not None and (check := checks.get(key)) is not None:
            check(value, key)


def _model(body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is None:
        raise InvalidRequest("you must provide a model parameter", param="model", code="missing_required_parameter")
    if not isinstance(model, str) or not model:
        _fail("model", "expected a non-empty string")


def chat(body: dict[str, Any]) -> None:
    _model(body)
    messages = body.get("messages")
    if messages is None:
        raise InvalidRequest(
            "Missing required parameter: 'messages'.", param="messages", code="missing_required_parameter"
        )
    if not isinstance(messages, list) or not messages:
        _fail("messages", "expected a non-empty array of message objects")
    for i, message in enumerate(messages):
        _message(message, f"messages[{i}]")
    _params(body, _CHAT)
    if body.get("stream_options") is not None and body.get("stream") is not True:
        _fail("stream_options", "only allowed when 'stream' is true")
    if body.get("tools") is not None:
        _tools(body["tools"])
    rf = body.get("response_format")
    if rf is not None and rf.get("type") not in ("text", "json_object", "json_schema"):
        _fail("response_format.type", "must be one of text, json_object, json_schema")


def _message(message: Any, param: str) -> None:
    if not isinstance(message, dict):
        _fail(param, f"expected a message object, got {_kind(message)}")
    role = message.get("role")
    if not isinstance(role, str) or role not in ROLES:
        _fail(f"{param}.role", f"must be one of {', '.join(sorted(ROLES))}, got {role!r}")
    content = message.get("content")
    if content is None:
        if role in ("user", "system", "developer") or (role == "assistant" and not message.get("tool_calls")):
            if role != "assistant" or "function_call" not in message:
                _fail(f"{param}.content", "is required for this role")
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                _fail(f"{param}.content[{j}]", "expected a content part object with a 'type'")
    elif not isinstance(content, str):
        _fail(f"{param}.content", f"expected a string or an array of content parts, got {_kind(content)}")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        _fail(f"{param}.tool_call_id", "is required for tool messages")


def _tools(tools: Any) -> None:
    if not isinstance(tools, list):
        _fail("tools", f"expected an array, got {_kind(tools)}")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            _fail(f"tools[{i}]", "expected a tool object")
        fn = tool.get("function")
        if tool.get("type") == "function" and (not isinstance(fn, dict) or not isinstance(fn.get("name"), str)):
            _fail(f"tools[{i}].function.name", "is required")


def _prompt_like(value: Any, param: str) -> None:
    if isinstance(value, str):
        return
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return
        if all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value):
            return
    _fail(param, "expected a string, an array of strings, or an array of token arrays")


def completions(body: dict[str, Any]) -> None:
    _model(body)
    if "prompt" not in body:
        raise InvalidRequest("Missing required parameter: 'prompt'.", param="prompt", code="missing_required_parameter")
    _prompt_like(body["prompt"], "prompt")
    _params(body, _COMPLETIONS)


def embeddings(body: dict[str, Any]) -> None:
    _model(body)
    if "input" not in body:
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    _prompt_like(body["input"], "input")
    _params(body, _EMBEDDINGS)
