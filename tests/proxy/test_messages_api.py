"""The Messages surface helpers: request checks, Anthropic error bodies (read by the SDK), the key, token counts."""

from __future__ import annotations

import json
from typing import Any

import anthropic
import httpx2
import pytest
from anthropic.types.shared import ErrorResponse

from proxy import messages_api, tokens
from proxy.errors import (
    BudgetExceeded,
    ChaperoneError,
    Forbidden,
    InvalidRequest,
    ModelNotFound,
    PayloadTooLarge,
    Unauthorized,
    UpstreamError,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnavailable,
)


def body(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-haiku-4-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}], **extra}


# --- validation ---------------------------------------------------------------------------------


def test_a_full_valid_request_passes_with_unknown_fields() -> None:
    messages_api.validate(
        body(
            system=[{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "hi"},
                        {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                    ],
                },
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
            ],
            tools=[{"name": "f", "input_schema": {"type": "object"}}, {"type": "web_search_20250305", "name": "ws"}],
            tool_choice={"type": "tool", "name": "f"},
            stop_sequences=["\n\nHuman:"],
            temperature=1,
            top_p=0.5,
            top_k=5,
            stream=True,
            metadata={"user_id": "u"},
            service_tier="auto",
            some_future_field={"x": 1},
        )
    )


@pytest.mark.parametrize(
    ("request_body", "param"),
    [
        ({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}]}, "model"),
        (body(model=3), "model"),
        ({"model": "m", "messages": [{"role": "user", "content": "x"}]}, "max_tokens"),
        (body(max_tokens=0), "max_tokens"),
        (body(max_tokens="10"), "max_tokens"),
        (body(max_tokens=True), "max_tokens"),
        (body(messages=[]), "messages"),
        (body(messages="hi"), "messages"),
        (body(messages=[{"role": "user", "content": "a"}, {"role": "bot", "content": "b"}]), "messages.1.role"),
        (body(messages=[{"role": "user"}]), "messages.0.content"),
        (body(messages=[{"role": "user", "content": 5}]), "messages.0.content"),
        (body(messages=[{"role": "user", "content": []}]), "messages.0"),
        (body(messages=[{"role": "assistant", "content": ""}, {"role": "user", "content": "x"}]), "messages.0"),
        (
            body(messages=[{"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "video"}]}]),
            "messages.0.content.1.type",
        ),
        (body(messages=[{"role": "user", "content": [{"type": "text"}]}]), "messages.0.content.0.text"),
        (
            body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "ftp"}}]}]),
            "messages.0.content.0.source.type",
        ),
        (
            body(
                messages=[
                    {
                        "role": "user",
                        "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png"}}],
                    }
                ]
            ),
            "messages.0.content.0.source.data",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]),
            "messages.0.content.0.type",
        ),
        (
            body(
                messages=[
                    {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": "x"}]}
                ]
            ),
            "messages.0.content.0.input",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]),
            "messages.0.content.0.tool_use_id",
        ),
        (body(system=[{"type": "image"}]), "system.0.type"),
        (body(system=7), "system"),
        (body(tools={"name": "f"}), "tools"),
        (body(tools=[{"name": "f"}]), "tools.0.input_schema"),
        (body(tools=[{"input_schema": {}}]), "tools.0.name"),
        (body(tool_choice={"type": "sometimes"}), "tool_choice.type"),
        (body(tool_choice={"type": "tool"}), "tool_choice.name"),
        (
            body(tool_choice={"type": "auto", "disable_parallel_tool_use": "yes"}),
            "tool_choice.disable_parallel_tool_use",
        ),
        (body(stop_sequences="END"), "stop_sequences"),
        (body(stop_sequences=["a", 1]), "stop_sequences"),
        (body(temperature=1.5), "temperature"),
        (body(temperature=float("nan")), "temperature"),
        (body(top_p=-0.1), "top_p"),
        (body(top_k=2.5), "top_k"),
        (body(stream="true"), "stream"),
        (body(metadata={"user_id": 5}), "metadata.user_id"),
    ],
)
def test_bad_requests_name_the_field_anthropic_style(request_body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        messages_api.validate(request_body)
    assert caught.value.param == param
    assert caught.value.message.startswith(f"{param}: ")


def test_a_final_assistant_message_may_be_empty() -> None:
    messages_api.validate(body(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": ""}]))


def test_count_tokens_body_needs_no_max_tokens() -> None:
    request_body = body()
    del request_body["max_tokens"]
    messages_api.validate_count_tokens(request_body)
    with pytest.raises(InvalidRequest, match="max_tokens"):
        messages_api.validate(request_body)
    with pytest.raises(InvalidRequest) as caught:
        messages_api.validate_count_tokens({"model": "m", "messages": [{"role": "model", "content": "x"}]})
    assert caught.value.param == "messages.0.role"


# --- errors, as the anthropic SDK reads them ------------------------------------------------------


def raise_through_sdk(exc: ChaperoneError) -> anthropic.APIStatusError:
    """Serve ``error_body(exc)`` with its status to a real anthropic client; return what it raises."""
    response = httpx2.Response(
        exc.http_status,
        content=messages_api.error_body(exc, request_id="req_1"),
        headers={"content-type": "application/json", **exc.headers()},
    )
    client = anthropic.Anthropic(
        api_key="k",
        base_url="http://proxy.test",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(lambda _r: response)),
    )
    with pytest.raises(anthropic.APIStatusError) as caught:
        client.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "x"}])
    return caught.value


@pytest.mark.parametrize(
    ("exc", "sdk_class", "error_type"),
    [
        (
            InvalidRequest("messages.0.role: bad", param="messages.0.role"),
            anthropic.BadRequestError,
            "invalid_request_error",
        ),
        (Unauthorized("invalid x-api-key"), anthropic.AuthenticationError, "authentication_error"),
        (Forbidden("model not allowed"), anthropic.PermissionDeniedError, "permission_error"),
        (ModelNotFound("no such model"), anthropic.NotFoundError, "not_found_error"),
        (PayloadTooLarge("too big"), anthropic.ContentTooLargeError, "request_too_large"),
        (BudgetExceeded("budget spent"), anthropic.RateLimitError, "rate_limit_error"),
        (ChaperoneError("internal error"), anthropic.InternalServerError, "api_error"),
        (UpstreamError("bad gateway"), anthropic.InternalServerError, "api_error"),
        (UpstreamUnavailable("down"), anthropic.ServiceUnavailableError, "api_error"),
        (UpstreamTimeout("slow"), anthropic.GatewayTimeoutError, "timeout_error"),
        (
            UpstreamStatus(529, b'{"error": {"message": "engine overloaded", "type": "server_error"}}'),
            anthropic.OverloadedError,
            "overloaded_error",
        ),
    ],
)
def test_error_bodies_raise_the_matching_sdk_exception(
    exc: ChaperoneError, sdk_class: type[anthropic.APIStatusError], error_type: str
) -> None:
    raised = raise_through_sdk(exc)
    assert type(raised) is sdk_class
    assert raised.body == {
        "type": "error",
        "error": {"type": error_type, "message": exc.message},
        "request_id": "req_1",
    }
    if error_type != "request_too_large":  # documented by Anthropic, absent from the SDK's ErrorObject union
        ErrorResponse.model_validate(raised.body)


def test_upstream_status_keeps_the_upstreams_message_and_status() -> None:
    exc = UpstreamStatus(400, b'{"error": {"message": "This model\'s maximum context length is 8192 tokens"}}')
    raised = raise_through_sdk(exc)
    assert isinstance(raised, anthropic.BadRequestError)
    assert raised.body["error"] == {  # type: ignore[index]
        "type": "invalid_request_error",
        "message": "This model's maximum context length is 8192 tokens",
    }


def test_error_event_is_an_sse_error() -> None:
    event = messages_api.error_event(UpstreamUnavailable("backend went away"))
    name, data = event.decode().strip().split("\n")
    assert name == "event: error"
    assert json.loads(data.removeprefix("data: ")) == {
        "type": "error",
        "error": {"type": "api_error", "message": "backend went away"},
    }


# --- the key ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"x-api-key": "sk-ant-1"}, "Bearer sk-ant-1"),
        ({"X-Api-Key": " sk-ant-1 "}, "Bearer sk-ant-1"),
        ({"Authorization": "Bearer tok"}, "Bearer tok"),
        ({"x-api-key": "k1", "authorization": "Bearer k2"}, "Bearer k2"),
        ({"x-api-key": "k1", "authorization": ""}, "Bearer k1"),
        ({"content-type": "application/json"}, None),
    ],
)
def test_api_key_header(headers: dict[str, str], expected: str | None) -> None:
    assert messages_api.api_key_header(headers) == expected


def test_api_key_header_reads_the_sdks_own_headers() -> None:
    seen: dict[str, str] = {}

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen["auth"] = messages_api.api_key_header(request.headers) or ""
        return httpx2.Response(200, json={"input_tokens": 1})

    client = anthropic.Anthropic(
        api_key="sk-ant-xyz",
        base_url="http://proxy.test",
        max_retries=0,
        http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
    )
    client.messages.count_tokens(model="m", messages=[{"role": "user", "content": "x"}])
    assert seen["auth"] == "Bearer sk-ant-xyz"


# --- token counts -------------------------------------------------------------------------------

OVERHEAD = tokens.TOKENS_PER_MESSAGE + tokens.REPLY_PRIMING + 1  # + 1: the role "user"


def test_count_tokens_of_a_plain_string_is_tiktoken_plus_overhead() -> None:
    text = "The quick brown fox jumps over the lazy dog."
    encoding, exact = tokens.encoding_for("claude-haiku-4-5")
    assert not exact and encoding.name == "o200k_base"
    expected = len(encoding.encode(text)) + OVERHEAD
    assert messages_api.count_tokens(body(messages=[{"role": "user", "content": text}])) == expected
    as_blocks = body(messages=[{"role": "user", "content": [{"type": "text", "text": text}]}])
    assert messages_api.count_tokens(as_blocks) == expected


def test_count_tokens_grows_with_each_part_of_the_request() -> None:
    plain = body()
    steps = [
        plain,
        {**plain, "system": "You are a careful assistant."},
        {
            **plain,
            "system": "You are a careful assistant.",
            "tools": [{"name": "get_weather", "description": "Weather", "input_schema": {"type": "object"}}],
        },
    ]
    with_turns = {
        **steps[-1],
        "messages": [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t", "name": "get_weather", "input": {"city": "Paris"}}],
            },
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "18 degrees, sunny"}]},
        ],
    }
    with_image = {
        **with_turns,
        "messages": [
            *with_turns["messages"],
            {
                "role": "user",
                "content": [
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "A" * 40_000}}
                ],
            },
        ],
    }
    counts = [messages_api.count_tokens(b) for b in [*steps, with_turns, with_image]]
    assert counts == sorted(counts) and len(set(counts)) == len(counts)
    # an image is a fixed estimate, whatever the size of its data
    assert tokens.IMAGE_TOKENS <= counts[-1] - counts[-2] <= tokens.IMAGE_TOKENS + OVERHEAD


def test_count_tokens_skips_thinking_and_refuses_documents() -> None:
    thinking = {
        "role": "assistant",
        "content": [{"type": "thinking", "thinking": "long " * 500, "signature": "s"}, {"type": "text", "text": "ok"}],
    }
    plain = {"role": "assistant", "content": "ok"}
    assert messages_api.count_tokens(body(messages=[{"role": "user", "content": "q"}, thinking])) == (
        messages_api.count_tokens(body(messages=[{"role": "user", "content": "q"}, plain]))
    )
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "x"}}
    with pytest.raises(InvalidRequest):
        messages_api.count_tokens(body(messages=[{"role": "user", "content": [document]}]))
