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

_Check = Callable[[Any, str], None]
# A part type's shape: (field, check, required) for each field it must or may carry, then the
# fields of which at least one must be present (empty: no such rule).
Shape = tuple[tuple[tuple[str, _Check, bool], ...], tuple[str, ...]]


def _fail(param: str, what: str, code: str = "invalid_value") -> NoReturn:
    raise InvalidRequest(f"Invalid value for '{param}': {what}", param=param, code=code)


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def _string(value: Any, param: str) -> None:
    if not isinstance(value, str):
        _fail(param, f"expected a string, got {_kind(value)}")


def _array(value: Any, param: str) -> None:
    if not isinstance(value, list):
        _fail(param, f"expected an array, got {_kind(value)}")


def _object(*fields: tuple[str, _Check, bool], one_of: tuple[str, ...] = ()) -> _Check:
    """A check for a nested object with these fields (the ``image_url`` of a chat image part)."""
    shape: Shape = (fields, one_of)

    def check(value: Any, param: str) -> None:
        if not isinstance(value, dict):
            _fail(param, f"expected an object, got {_kind(value)}")
        _fields(value, shape, param)

    return check


def _fields(holder: dict[str, Any], shape: Shape, param: str) -> None:
    fields, one_of = shape
    for name, check, required in fields:
        value = holder.get(name)
        if value is None:
            if required:
                raise InvalidRequest(
                    f"Missing required parameter: '{param}.{name}'.",
                    param=f"{param}.{name}",
                    code="missing_required_parameter",
                )
            continue
        check(value, f"{param}.{name}")
    if one_of and all(holder.get(name) is None for name in one_of):
        names = " or ".join(f"'{name}'" for name in one_of)
        raise InvalidRequest(
            f"Invalid '{param}': one of {names} is required.", param=param, code="missing_required_parameter"
        )


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


def check_parts(parts: list[Any], param: str, shapes: Mapping[str, Shape]) -> None:
    """Check every part of ``parts`` (found at ``param``) against ``shapes``; unknown types are refused."""
    for j, part in enumerate(parts):
        where = f"{param}[{j}]"
        if not isinstance(part, dict):
            _fail(where, f"expected a content part object, got {_kind(part)}")
        kind = part.get("type")
        if kind is None:
            _fail(where, "expected a content part object with a 'type'")
        shape = shapes.get(kind) if isinstance(kind, str) else None
        if shape is None:
            known = ", ".join(f"'{name}'" for name in shapes)
            _fail(f"{where}.type", f"{kind!r} is not a known content part type; supported: {known}")
        _fields(part, shape, where)
