"""Content parts are checked against their type's shape on every endpoint, naming the field that is wrong."""

from __future__ import annotations

from typing import Any

import pytest

from proxy import messages_api, validate
from proxy.errors import InvalidRequest
from proxy.parts import CHAT_PARTS, RESPONSES_PARTS


def chat(*parts: Any, role: str = "user") -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "system", "content": "s"}, {"role": role, "content": list(parts)}]}


def responses(*parts: Any) -> dict[str, Any]:
    return {"model": "m", "input": [{"role": "user", "content": list(parts)}]}


def tool_output(*parts: Any) -> dict[str, Any]:
    return {"model": "m", "input": [{"type": "function_call_output", "call_id": "c", "output": list(parts)}]}


def messages(*blocks: Any, role: str = "user") -> dict[str, Any]:
    return {"model": "m", "max_tokens": 8, "messages": [{"role": role, "content": list(blocks)}]}


TEXT = {"type": "text", "text": "hi"}
MISSING = "missing_required_parameter"
# (checker, body, param named by the 400, code)
REFUSED: list[tuple[Any, dict[str, Any], str, str]] = [
    (validate.chat, chat(TEXT, {"type": "text", "text": 5}), "messages[1].content[1].text", "invalid_value"),
    (validate.chat, chat({"type": "text", "text": None}), "messages[1].content[0].text", MISSING),
    (validate.chat, chat({"type": "text"}), "messages[1].content[0].text", MISSING),
    (validate.chat, chat({"type": "text", "text": ["a"]}), "messages[1].content[0].text", "invalid_value"),
    (
        validate.chat,
        chat({"type": "image_url", "image_url": "https://x/y.png"}),
        "messages[1].content[0].image_url",
        "invalid_value",
    ),
    (
        validate.chat,
        chat({"type": "image_url", "image_url": {"detail": "low"}}),
        "messages[1].content[0].image_url.url",
        MISSING,
    ),
    (
        validate.chat,
        chat({"type": "image_url", "image_url": {"url": "u", "detail": 3}}),
        "messages[1].content[0].image_url.detail",
        "invalid_value",
    ),
    (
        validate.chat,
        chat({"type": "input_audio", "input_audio": {"data": "AAAA"}}),
        "messages[1].content[0].input_audio.format",
        MISSING,
    ),
    (validate.chat, chat({"type": "file", "file": {"filename": "a.pdf"}}), "messages[1].content[0].file", MISSING),
    (
        validate.chat,
        chat({"type": "file", "file": {"file_id": 12}}),
        "messages[1].content[0].file.file_id",
        "invalid_value",
    ),
    (
        validate.chat,
        chat({"type": "refusal", "refusal": {}}, role="assistant"),
        "messages[1].content[0].refusal",
        "invalid_value",
    ),
    (validate.chat, chat({"type": "video", "video": "v"}), "messages[1].content[0].type", "invalid_value"),
    (validate.chat, chat({"type": {"nested": 1}}), "messages[1].content[0].type", "invalid_value"),
    (validate.chat, chat({"text": "no type"}), "messages[1].content[0]", "invalid_value"),
    (validate.chat, chat("bare string"), "messages[1].content[0]", "invalid_value"),
    (
        validate.chat,
        {"model": "m", "messages": [{"role": "tool", "tool_call_id": "c", "content": [{"type": "text"}]}]},
        "messages[0].content[0].text",
        MISSING,
    ),
    (validate.responses, responses({"type": "input_text", "text": 1}), "input[0].content[0].text", "invalid_value"),
    (validate.responses, responses({"type": "input_image", "detail": "low"}), "input[0].content[0]", MISSING),
    (
        validate.responses,
        responses({"type": "input_image", "image_url": {"url": "u"}}),
        "input[0].content[0].image_url",
        "invalid_value",
    ),
    (validate.responses, responses({"type": "input_file", "filename": "a"}), "input[0].content[0]", MISSING),
    (
        validate.responses,
        responses({"type": "output_text", "text": "t", "annotations": {}}),
        "input[0].content[0].annotations",
        "invalid_value",
    ),
    (
        validate.responses,
        responses({"type": "text", "text": "chat-style"}),
        "input[0].content[0].type",
        "invalid_value",
    ),
    (validate.responses, tool_output({"type": "input_text", "text": None}), "input[0].output[0].text", MISSING),
    (
        validate.responses,
        {"model": "m", "input": [{"type": "reasoning", "summary": [{"type": "summary_text"}]}]},
        "input[0].summary[0].text",
        MISSING,
    ),
    (messages_api.validate, messages({"type": "text", "text": 5}), "messages.0.content.0.text", "invalid_value"),
    (
        messages_api.validate,
        messages({"type": "thinking", "thinking": "t"}, role="assistant"),
        "messages.0.content.0.signature",
        "invalid_value",
    ),
    (
        messages_api.validate,
        messages({"type": "document", "source": "s"}),
        "messages.0.content.0.source",
        "invalid_value",
    ),
    (messages_api.validate, messages({"type": ["text"]}), "messages.0.content.0.type", "invalid_value"),
    (
        messages_api.validate,
        {"model": "m", "max_tokens": 8, "messages": [{"role": {}, "content": "x"}]},
        "messages.0.role",
        "invalid_value",
    ),
]


@pytest.mark.parametrize(("check", "body", "param", "code"), REFUSED, ids=[row[2] + " " for row in REFUSED])
def test_a_part_off_its_shape_is_refused_naming_the_field(
    check: Any, body: dict[str, Any], param: str, code: str
) -> None:
    with pytest.raises(InvalidRequest) as err:
        check(body)
    assert (err.value.param, err.value.code) == (param, code), err.value.message
    assert err.value.http_status == 400


ACCEPTED: list[tuple[Any, dict[str, Any]]] = [
    (validate.chat, chat(TEXT, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}})),
    (validate.chat, chat({"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}})),
    (validate.chat, chat({"type": "file", "file": {"file_data": "data:application/pdf;base64,AA", "filename": "a"}})),
    (validate.chat, chat({"type": "video_url", "video_url": {"url": "https://x/v.mp4"}})),  # vLLM's
    (validate.chat, chat({"type": "text", "text": "t", "cache_control": {"type": "ephemeral"}})),  # extra keys pass
    (validate.chat, chat({"type": "text", "text": ""}, {"type": "refusal", "refusal": "no"}, role="assistant")),
    (validate.responses, responses({"type": "input_text", "text": "t"}, {"type": "input_image", "file_id": "f"})),
    (validate.responses, responses({"type": "input_file", "file_url": "https://x/a.pdf"})),
    (validate.responses, tool_output({"type": "input_text", "text": "42"})),
    (messages_api.validate, messages({"type": "thinking", "thinking": "t", "signature": "s"}, role="assistant")),
]


@pytest.mark.parametrize(("check", "body"), ACCEPTED)
def test_parts_in_their_shape_pass(check: Any, body: dict[str, Any]) -> None:
    check(body)


def test_the_vocabularies_are_the_documented_ones() -> None:
    assert set(CHAT_PARTS) == {"text", "refusal", "image_url", "input_audio", "file", "audio_url", "video_url"}
    assert {"input_text", "output_text", "input_image", "input_file", "refusal"} <= set(RESPONSES_PARTS)


def test_other_fields_of_a_chat_request_are_typed_too() -> None:
    cases = [
        (
            {"role": "assistant", "content": None, "tool_calls": [{"type": "function", "function": {"name": "f"}}]},
            "messages[0].tool_calls[0].function.arguments",
        ),
        (
            {"role": "assistant", "content": None, "tool_calls": [{"type": 0, "function": {}}]},
            "messages[0].tool_calls[0].type",
        ),
        ({"role": "user", "content": "x", "name": 5}, "messages[0].name"),
    ]
    for message, param in cases:
        with pytest.raises(InvalidRequest) as err:
            validate.chat({"model": "m", "messages": [message]})
        assert err.value.param == param
    with pytest.raises(InvalidRequest) as err:
        validate.chat(
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": "function"}}
        )
    assert err.value.param == "tool_choice.function"
