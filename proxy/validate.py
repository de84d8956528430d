"""Check client requests against the OpenAI shapes before anything is forwarded.

Only what the OpenAI API would itself reject is refused here, with a 400 whose ``param`` names
the field (``messages[1].role``). Fields Chaperone does not know pass through untouched.
Hand-written checks, not a schema library: this runs on every request.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, NoReturn

from proxy.errors import InvalidRequest
from proxy.parts import CHAT_PARTS, RESPONSES_PARTS, check_parts

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_Check = Callable[[Any, str], None]


def _fail(param: str, what: str) -> NoReturn:
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


def _strings(value: Any, param: str) -> None:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        _fail(param, "expected an array of strings")


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
    "modalities": _strings,
    "audio": _object,
    "prediction": _object,
    "reasoning_effort": _string,
    "service_tier": _string,
    "verbosity": _string,
    "web_search_options": _object,
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
    if body.get("tool_choice") is not None:
        _tool_choice(body["tool_choice"])
    if body.get("logit_bias") is not None:
        for token, bias in body["logit_bias"].items():
            _number(-100, 100)(bias, f"logit_bias.{token}")
    rf = body.get("response_format")
    if rf is not None:
        _response_format(rf)


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
        check_parts(content, f"{param}.content", CHAT_PARTS)
    elif not isinstance(content, str):
        _fail(f"{param}.content", f"expected a string or an array of content parts, got {_kind(content)}")
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        _fail(f"{param}.tool_call_id", "is required for tool messages")
    for name in ("name", "refusal"):
        if message.get(name) is not None:
            _string(message[name], f"{param}.{name}")
    if message.get("tool_calls") is not None:
        _tool_calls(message["tool_calls"], f"{param}.tool_calls")
    if message.get("function_call") is not None:
        _function(message["function_call"], f"{param}.function_call", arguments=True)


def _tool_calls(calls: Any, param: str) -> None:
    if not isinstance(calls, list):
        _fail(param, f"expected an array of tool calls, got {_kind(calls)}")
    for j, call in enumerate(calls):
        if not isinstance(call, dict):
            _fail(f"{param}[{j}]", f"expected a tool call object, got {_kind(call)}")
        for name in ("id", "type"):
            if call.get(name) is not None:
                _string(call[name], f"{param}[{j}].{name}")
        if call.get("type", "function") == "function":
            _function(call.get("function"), f"{param}[{j}].function", arguments=True)


def _function(fn: Any, param: str, *, arguments: bool) -> None:
    """A ``{"name", "arguments"}`` object: a tool call's function, or the legacy ``function_call``."""
    if not isinstance(fn, dict):
        _fail(param, f"expected an object, got {_kind(fn)}")
    if not isinstance(fn.get("name"), str):
        _fail(f"{param}.name", f"expected a string, got {_kind(fn.get('name'))}")
    if arguments and not isinstance(fn.get("arguments"), str):
        _fail(f"{param}.arguments", f"expected a string of JSON, got {_kind(fn.get('arguments'))}")


def _tool_choice(choice: Any) -> None:
    if isinstance(choice, str):
        _choice("none", "auto", "required")(choice, "tool_choice")
        return
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str):
        _fail("tool_choice", "expected 'none', 'auto', 'required' or an object with a 'type'")
    if choice["type"] == "function":
        _function(choice.get("function"), "tool_choice.function", arguments=False)


def _response_format(rf: dict[str, Any]) -> None:
    kind = rf.get("type")
    if kind not in ("text", "json_object", "json_schema"):
        _fail("response_format.type", "must be one of text, json_object, json_schema")
    if kind == "json_schema":
        spec = rf.get("json_schema")
        if not isinstance(spec, dict):
            _fail("response_format.json_schema", f"expected an object, got {_kind(spec)}")
        if not isinstance(spec.get("name"), str):
            _fail("response_format.json_schema.name", f"expected a string, got {_kind(spec.get('name'))}")
        if spec.get("schema") is not None:
            _object(spec["schema"], "response_format.json_schema.schema")


def _tools(tools: Any) -> None:
    if not isinstance(tools, list):
        _fail("tools", f"expected an array, got {_kind(tools)}")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            _fail(f"tools[{i}]", "expected a tool object")
        if not isinstance(tool.get("type"), str):
            _fail(f"tools[{i}].type", f"expected a string, got {_kind(tool.get('type'))}")
        fn = tool.get("function")
        if tool["type"] != "function":
            continue
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            _fail(f"tools[{i}].function.name", "is required")
        for name, check in _FUNCTION_FIELDS:
            if fn.get(name) is not None:
                check(fn[name], f"tools[{i}].function.{name}")


_FUNCTION_FIELDS: tuple[tuple[str, _Check], ...] = (
    ("description", _string),
    ("parameters", _object),
    ("strict", _boolean),
)


def _prompt_like(value: Any, param: str) -> None:
    if isinstance(value, str):
        return
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return
        if all(isinstance(v, list) and v and all(isinstance(t, int) and not isinstance(t, bool) for t in v)
               for v in value):  # fmt: skip
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


# ---------------------------------------------------------------- POST /v1/responses

_RESPONSES: dict[str, _Check] = {
    "instructions": _string,
    "max_output_tokens": _integer(16),  # api.openai.com refuses fewer than 16
    "max_tool_calls": _integer(1),
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "top_logprobs": _integer(0, 20),
    "stream": _boolean,
    "store": _boolean,
    "background": _boolean,
    "parallel_tool_calls": _boolean,
    "previous_response_id": _string,
    "user": _string,
    "safety_identifier": _string,
    "prompt_cache_key": _string,
    "reasoning": _object,
    "stream_options": _object,
    "truncation": _choice("auto", "disabled"),
}
_INPUT_ROLES = ("user", "assistant", "system", "developer")
_TEXT_FORMATS = ("text", "json_schema", "json_object")
_SCHEMA_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def responses(body: dict[str, Any]) -> None:
    """Check a ``POST /v1/responses`` body as api.openai.com would, naming the offending param."""
    _model(body)
    if body.get("input") is None and not any(body.get(k) is not None for k in ("previous_response_id", "prompt")):
        raise InvalidRequest("Missing required parameter: 'input'.", param="input", code="missing_required_parameter")
    if body.get("input") is not None:
        _input(body["input"])
    _params(body, _RESPONSES)
    if body.get("stream_options") is not None and body.get("stream") is not True:
        _fail("stream_options", "only allowed when 'stream' is true")
    if body.get("tools") is not None:
        _response_tools(body["tools"])
    if body.get("tool_choice") is not None:
        _response_tool_choice(body["tool_choice"])
    if body.get("text") is not None:
        _text_config(body["text"])
    if body.get("metadata") is not None:
        _metadata(body["metadata"])
    if body.get("include") is not None and (
        not isinstance(body["include"], list) or not all(isinstance(v, str) for v in body["include"])
    ):
        _fail("include", "expected an array of strings")


def _input(value: Any) -> None:
    if isinstance(value, str):
        return
    if not isinstance(value, list):
        _fail("input", f"expected a string or an array of input items, got {_kind(value)}")
    for i, item in enumerate(value):
        _input_item(item, f"input[{i}]")


def _input_item(item: Any, param: str) -> None:
    if not isinstance(item, dict):
        _fail(param, f"expected an input item object, got {_kind(item)}")
    kind = item.get("type")
    if kind is not None and not isinstance(kind, str):
        _fail(f"{param}.type", f"expected a string, got {_kind(kind)}")
    if kind is None and "role" not in item:
        _fail(f"{param}.type", "is required for input items that are not messages")
    if kind in (None, "message"):
        _input_message(item, param)
    elif kind == "function_call":
        for name in ("call_id", "name", "arguments"):
            _required_string(item, name, param)
    elif kind == "function_call_output":
        _required_string(item, "call_id", param)
        output = item.get("output")
        if isinstance(output, list):
            check_parts(output, f"{param}.output", RESPONSES_PARTS)
        elif not isinstance(output, str):
            _fail(f"{param}.output", f"expected a string or an array of content parts, got {_kind(output)}")
    elif kind == "item_reference":
        _required_string(item, "id", param)
    elif kind == "reasoning":
        for name in ("summary", "content"):
            parts = item.get(name)
            if parts is not None:
                if not isinstance(parts, list):
                    _fail(f"{param}.{name}", f"expected an array of content parts, got {_kind(parts)}")
                check_parts(parts, f"{param}.{name}", RESPONSES_PARTS)


def _input_message(item: dict[str, Any], param: str) -> None:
    role = item.get("role")
    if role not in _INPUT_ROLES:
        _fail(f"{param}.role", f"must be one of {', '.join(_INPUT_ROLES)}, got {role!r}")
    content = item.get("content")
    if isinstance(content, list):
        check_parts(content, f"{param}.content", RESPONSES_PARTS)
    elif not isinstance(content, str):
        _fail(f"{param}.content", f"expected a string or an array of content parts, got {_kind(content)}")


def _required_string(item: dict[str, Any], name: str, param: str) -> None:
    if not isinstance(item.get(name), str):
        _fail(f"{param}.{name}", f"expected a string, got {_kind(item.get(name))}")


def _response_tools(tools: Any) -> None:
    if not isinstance(tools, list):
        _fail("tools", f"expected an array, got {_kind(tools)}")
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            _fail(f"tools[{i}]", f"expected a tool object, got {_kind(tool)}")
        if not isinstance(tool.get("type"), str):
            _fail(f"tools[{i}].type", "is required")
        if tool["type"] == "function":
            if not isinstance(tool.get("name"), str) or not tool["name"]:
                _fail(f"tools[{i}].name", "is required for function tools")
            if tool.get("parameters") is not None and not isinstance(tool["parameters"], dict):
                _fail(f"tools[{i}].parameters", f"expected an object, got {_kind(tool['parameters'])}")


def _response_tool_choice(choice: Any) -> None:
    if isinstance(choice, str):
        _choice("none", "auto", "required")(choice, "tool_choice")
        return
    if not isinstance(choice, dict) or not isinstance(choice.get("type"), str):
        _fail("tool_choice", "expected 'none', 'auto', 'required' or an object with a 'type'")
    if choice["type"] == "function" and not isinstance(choice.get("name"), str):
        _fail("tool_choice.name", "is required when 'tool_choice.type' is 'function'")


def _text_config(text: Any) -> None:
    _object(text, "text")
    fmt = text.get("format")
    if fmt is None:
        return
    _object(fmt, "text.format")
    _choice(*_TEXT_FORMATS)(fmt.get("type"), "text.format.type")
    if fmt["type"] == "json_schema":
        name = fmt.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(
                "Missing required parameter: 'text.format.name'.",
                param="text.format.name",
                code="missing_required_parameter",
            )
        if not _SCHEMA_NAME.fullmatch(name):
            _fail("text.format.name", "must be 1 to 64 letters, digits, underscores or dashes")
        if fmt.get("schema") is None:
            raise InvalidRequest(
                "Missing required parameter: 'text.format.schema'.",
                param="text.format.schema",
                code="missing_required_parameter",
            )
        _object(fmt["schema"], "text.format.schema")


def _metadata(metadata: Any) -> None:
    _object(metadata, "metadata")
    if len(metadata) > 16:
        _fail("metadata", f"at most 16 keys, got {len(metadata)}")
    for key, value in metadata.items():
        if len(key) > 64:
            _fail("metadata", f"keys are at most 64 characters, got {len(key)}")
        if not isinstance(value, str):
            _fail(f"metadata.{key}", f"expected a string, got {_kind(value)}")
        if len(value) > 512:
            _fail(f"metadata.{key}", f"values are at most 512 characters, got {len(value)}")
