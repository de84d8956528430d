"""Content parts: the shape each part type must have, checked before a request is forwarded.

A content part is an object with a ``type`` that decides the fields it carries (chat
``messages[i].content[j]``, Responses ``input[i].content[j]`` and ``function_call_output.output[j]``).
The rule, the same on every endpoint:

- A known type is checked against its shape: each required field present with the right JSON type,
  each optional field, when present and not null, of the right type. A 400 names the field
  (``messages[0].content[1].text``). Fields not listed pass untouched.
- A type Chaperone does not know is refused with a 400 on ``….type`` listing the known ones, as
  api.openai.com does. The chat vocabulary includes vLLM's ``audio_url`` and ``video_url`` parts.
- Value vocabularies inside a part (``detail``, audio ``format``) and which role may carry which part
  are left to the upstream: local servers accept more than OpenAI does.

Messages-API content blocks follow the same rule in ``proxy.messages_api`` (Anthropic's param style).
Hand-written table lookups, not a schema library: this runs on every part of every request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NoReturn

from proxy.errors import InvalidRequest

__all__ = ["CHAT_PARTS", "RESPONSES_PARTS", "check_parts"]

# A check returns None when the value is in shape, else (where below it, what is wrong, error code);
# no param string is built unless something is wrong.
Problem = tuple[str, str, str] | None
_Check = Callable[[Any], Problem]
# A part type's shape: (field, check, required) for each field it must or may carry, then the
# fields of which at least one must be present (empty: no such rule).
Shape = tuple[tuple[tuple[str, _Check, bool], ...], tuple[str, ...]]
_INVALID, _MISSING = "invalid_value", "missing_required_parameter"


def _fail(param: str, what: str, code: str = _INVALID) -> NoReturn:
    if code == _MISSING:
        message = f"Invalid '{param}': {what}" if what else f"Missing required parameter: '{param}'."
    else:
        message = f"Invalid value for '{param}': {what}"
    raise InvalidRequest(message, param=param, code=code)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _string(value: Any) -> Problem:
    return None if isinstance(value, str) else ("", f"expected a string, got {_kind(value)}", _INVALID)


def _array(value: Any) -> Problem:
    return None if isinstance(value, list) else ("", f"expected an array, got {_kind(value)}", _INVALID)


def _object(*fields: tuple[str, _Check, bool], one_of: tuple[str, ...] = ()) -> _Check:
    """A check for a nested object with these fields (the ``image_url`` of a chat image part)."""
    shape: Shape = (fields, one_of)

    def check(value: Any) -> Problem:
        if not isinstance(value, dict):
            return ("", f"expected an object, got {_kind(value)}", _INVALID)
        return _fields(value, shape)

    return check


def _fields(holder: dict[str, Any], shape: Shape) -> Problem:
    fields, one_of = shape
    for name, check, required in fields:
        value = holder.get(name)
        if value is None:
            if required:
                return (f".{name}", "", _MISSING)
            continue
        problem = check(value)
        if problem is not None:
            return (f".{name}{problem[0]}", problem[1], problem[2])
    if one_of and all(holder.get(name) is None for name in one_of):
        return ("", "one of " + " or ".join(f"'{name}'" for name in one_of) + " is required.", _MISSING)
    return None


_URL = _object(("url", _string, True))
_AUDIO = _object(("data", _string, True), ("format", _string, True))

CHAT_PARTS: Mapping[str, Shape] = {
    "text": ((("text", _string, True),), ()),
    "refusal": ((("refusal", _string, True),), ()),
    "image_url": ((("image_url", _object(("url", _string, True), ("detail", _string, False)), True),), ()),
    "input_audio": ((("input_audio", _AUDIO, True),), ()),
    "file": (
        (
            (
                "file",
                _object(
                    ("file_data", _string, False),
                    ("file_id", _string, False),
                    ("filename", _string, False),
                    one_of=("file_data", "file_id"),
                ),
                True,
            ),
        ),
        (),
    ),
    "audio_url": ((("audio_url", _URL, True),), ()),  # vLLM
    "video_url": ((("video_url", _URL, True),), ()),  # vLLM
}

RESPONSES_PARTS: Mapping[str, Shape] = {
    "input_text": ((("text", _string, True),), ()),
    "output_text": ((("text", _string, True), ("annotations", _array, False)), ()),
    "refusal": ((("refusal", _string, True),), ()),
    "summary_text": ((("text", _string, True),), ()),
    "reasoning_text": ((("text", _string, True),), ()),
    "input_image": (
        (("image_url", _string, False), ("file_id", _string, False), ("detail", _string, False)),
        ("image_url", "file_id"),
    ),
    "input_file": (
        (
            ("file_data", _string, False),
            ("file_id", _string, False),
            ("file_url", _string, False),
            ("filename", _string, False),
        ),
        ("file_data", "file_id", "file_url"),
    ),
    "input_audio": ((("input_audio", _AUDIO, True),), ()),
}


# Part types whose whole shape is a string ``text`` (what the fast path in ``check_parts`` may skip).
_TEXT_ONLY = frozenset({"text", "input_text", "output_text", "summary_text", "reasoning_text"})


def check_parts(parts: list[Any], param: str, shapes: Mapping[str, Shape]) -> None:
    """Check every part of ``parts`` (found at ``param``) against ``shapes``; unknown types are refused."""
    for j, part in enumerate(parts):
        if type(part) is dict and len(part) == 2 and type(part.get("text")) is str:
            kind = part.get("type")
            if type(kind) is str and kind in _TEXT_ONLY and kind in shapes:
                continue  # ``{"type": "text", "text": "…"}``: by far the most common part, and in its shape
        if not isinstance(part, dict):
            _fail(f"{param}[{j}]", f"expected a content part object, got {_kind(part)}")
        kind = part.get("type")
        if kind is None:
            _fail(f"{param}[{j}]", "expected a content part object with a 'type'")
        shape = shapes.get(kind) if isinstance(kind, str) else None
        if shape is None:
            known = ", ".join(f"'{name}'" for name in shapes)
            _fail(f"{param}[{j}].type", f"{kind!r} is not a known content part type; supported: {known}")
        problem = _fields(part, shape)
        if problem is not None:
            _fail(f"{param}[{j}]{problem[0]}", problem[1], problem[2])
