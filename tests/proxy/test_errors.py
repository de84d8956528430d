"""Every error leaves the proxy as OpenAI-shaped JSON with the status the openai SDK maps correctly."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from multidict import CIMultiDict
from pydantic import BaseModel, ConfigDict

from proxy import ApiResponse, Exchange, StashKey, hookimpl
from proxy import errors as errors_module
from proxy.errors import (
    BudgetExceeded,
    ChaperoneError,
    Conflict,
    Forbidden,
    HTTPRefusal,
    InvalidRequest,
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    PolicyViolation,
    RequestRejected,
    ResponseRejected,
    ServiceUnavailable,
    ShuttingDown,
    Unauthorized,
    UnsupportedEncoding,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy.registry import PluginRegistry
from tests.chain_helpers import sse_data
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

SHAPE = {"message", "type", "param", "code"}
MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]

# class, HTTP status, OpenAI type, default code, x-should-retry header (None: not sent)
TABLE: list[tuple[type[ChaperoneError], int, str, str, str | None]] = [
    (ChaperoneError, 500, "server_error", "internal_error", None),
    (RequestRejected, 400, "invalid_request_error", "invalid_request", "false"),
    (InvalidRequest, 400, "invalid_request_error", "invalid_request", "false"),
    (Unauthorized, 401, "authentication_error", "invalid_api_key", "false"),
    (Forbidden, 403, "permission_error", "model_not_allowed", "false"),
    (NotFound, 404, "invalid_request_error", "not_found", "false"),
    (ModelNotFound, 404, "invalid_request_error", "model_not_found", "false"),
    (Conflict, 409, "invalid_request_error", "conflict", "false"),  # [register]
    (MethodNotAllowed, 405, "invalid_request_error", "method_not_allowed", "false"),
    (PayloadTooLarge, 413, "invalid_request_error", "payload_too_large", "false"),
    (PolicyViolation, 400, "invalid_request_error", "policy_violation", "false"),
    (BudgetExceeded, 429, "insufficient_quota", "budget_exceeded", "false"),
    (ShuttingDown, 503, "server_error", "shutting_down", None),
    (ServiceUnavailable, 503, "server_error", "service_unavailable", None),
    (UpstreamError, 502, "upstream_error", "bad_gateway", None),
    (UpstreamTimeout, 504, "upstream_error", "upstream_timeout", None),
    (UpstreamUnavailable, 503, "upstream_error", "upstream_unavailable", None),
    (UpstreamRateLimited, 429, "rate_limit_error", "rate_limit_exceeded", None),
    (ResponseRejected, 502, "upstream_error", "response_rejected", None),
]
IDS = [row[0].__name__ for row in TABLE]


def all_error_classes() -> list[type[ChaperoneError]]:
    return [
        cls
        for _, cls in inspect.getmembers(errors_module, inspect.isclass)
        if issubclass(cls, ChaperoneError) and cls.__module__ == errors_module.__name__
    ]


def make_error(cls: type[ChaperoneError]) -> ChaperoneError:
    if cls is UpstreamStatus:
        return UpstreamStatus(500, b"boom")
    if cls is UnsupportedEncoding:
        return UnsupportedEncoding("br", "gzip, deflate")
    if cls is HTTPRefusal:
        return HTTPRefusal(417, "Unknown Expect: tea")
    return cls("something went wrong")


# ---- the classes themselves -------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "status", "type_", "code", "retry"), TABLE, ids=IDS)
def test_error_class_maps_to_status_type_and_code(
    cls: type[ChaperoneError], status: int, type_: str, code: str, retry: str | None
) -> None:
    exc = cls("no can do")
    assert exc.http_status == status
    assert exc.body() == {"error": {"message": "no can do", "type": type_, "param": None, "code": code}}
    assert json.loads(exc.body_bytes()) == exc.body()
    assert exc.headers().get("x-should-retry") == retry


def test_every_error_class_has_a_row_in_the_table() -> None:
    # UpstreamStatus takes the upstream's status; the edge's two build their own (tests/edge/test_protocol.py)
    covered = {row[0] for row in TABLE} | {UpstreamStatus, UnsupportedEncoding, HTTPRefusal}
    assert set(all_error_classes()) == covered


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
def test_every_error_yields_the_single_error_shape(cls: type[ChaperoneError]) -> None:
    exc = make_error(cls)
    body = json.loads(exc.body_bytes())
    assert set(body) == {"error"}
    assert set(body["error"]) == SHAPE
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["type"], str)
    assert 400 <= exc.http_status <= 599


def test_request_rejections_never_look_retryable() -> None:
    for cls in all_error_classes():
        if issubclass(cls, RequestRejected):
            assert make_error(cls).headers()["x-should-retry"] == "false", cls.__name__
            assert 400 <= cls.status < 500, cls.__name__


def test_param_and_code_are_per_instance() -> None:
    exc = InvalidRequest("bad role", param="messages[1].role", code="invalid_value")
    assert exc.body()["error"] == {
        "message": "bad role",
        "type": "invalid_request_error",
        "param": "messages[1].role",
        "code": "invalid_value",
    }
    assert InvalidRequest("other").code == "invalid_request"  # the class default is untouched


def test_retry_after_passes_through_headers() -> None:
    exc = UpstreamRateLimited("slow down", headers={"Retry-After": "7"})
    assert exc.headers() == {"Retry-After": "7"}
    budget = BudgetExceeded("over budget", headers={"Retry-After": "3600"})
    assert budget.headers() == {"Retry-After": "3600", "x-should-retry": "false"}


def test_upstream_status_passes_a_json_error_body_unchanged() -> None:
    upstream = {"error": {"message": "I'm a teapot", "type": "tea_error", "param": None, "code": "tea", "extra": 1}}
    exc = UpstreamStatus(418, json.dumps(upstream).encode(), {"retry-after": "2"})
    assert exc.http_status == 418
    assert exc.body() == upstream
    assert exc.message == "I'm a teapot"
    assert exc.headers() == {"retry-after": "2"}
    assert isinstance(exc, UpstreamError)  # call hooks (retry, fallback) catch it as an upstream failure


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"<html>502 Bad Gateway</html>", "upstream error: <html>502 Bad Gateway</html>"),
        (b"", "upstream answered 503"),
        (b'{"detail": "not openai-shaped"}', "upstream answered 503"),
        (b'{"error": "plain string"}', "plain string"),
    ],
)
def test_upstream_status_wraps_a_body_that_is_not_an_openai_error(raw: bytes, message: str) -> None:
    exc = UpstreamStatus(503, raw)
    assert exc.http_status == 503
    assert exc.body() == {"error": {"message": message, "type": "upstream_error", "param": None, "code": None}}


# ---- through the running proxy ------------------------------------------------------------------


class RaiserConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


RAISE: dict[str, Callable[[], BaseException]] = {cls.__name__: partial(make_error, cls) for cls in all_error_classes()}
RAISE["RuntimeError"] = lambda: RuntimeError("secret sk-live-123 leaked")
RAISE["RetryAfter"] = lambda: UpstreamRateLimited("slow down", headers={"Retry-After": "7"})


CHUNKS = StashKey[int]()


class Raiser:
    """Raises what the request's ``raise`` field names; counts calls so SDK retries are visible."""

    name = "raiser"
    Config = RaiserConfig
    calls = 0

    def __init__(self, config: RaiserConfig) -> None:
        self.config = config

    @hookimpl
    async def on_request(self, exchange: Exchange) -> ApiResponse | None:
        type(self).calls += 1
        what = exchange.request.body.get("raise")
        if isinstance(what, str):
            raise RAISE[what]()
        return None

    @hookimpl
    async def on_chunk(self, exchange: Exchange, chunk: dict[str, Any]) -> dict[str, Any] | None:
        seen = exchange.stash.get(CHUNKS, 0) or 0
        exchange.stash[CHUNKS] = seen + 1
        if exchange.request.body.get("fail_stream") and seen == 2:
            raise ResponseRejected("the answer broke a rule", code="judge_rejected")
        return chunk


@pytest.fixture
async def raising_proxy(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    registry: PluginRegistry,
) -> RunningProxy:
    Raiser.calls = 0
    registry(Raiser)
    return await start_proxy(write_policy(simple_policy(mock_upstream.url, chain="[raiser]")))


async def post(url: str, body: Any, headers: Mapping[str, str] | None = None) -> tuple[int, CIMultiDict[str], bytes]:
    """POST raw JSON with aiohttp; the response's status, headers (case-insensitive) and body."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=data, headers={"content-type": "application/json", **(headers or {})}) as r,
    ):
        return r.status, r.headers.copy(), await r.read()


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
async def test_plugin_errors_reach_the_client_as_openai_json(
    cls: type[ChaperoneError], raising_proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    expected = make_error(cls)
    status, headers, raw = await post(
        raising_proxy.url + "/chat/completions",
        {"model": "mock-gpt", "messages": MESSAGES, "raise": cls.__name__, "stream": True},
    )
    assert status == expected.http_status
    assert headers["Content-Type"].startswith("application/json")
    assert json.loads(raw) == expected.body()
    assert headers["x-request-id"]
    assert headers.get("x-should-retry") == expected.headers().get("x-should-retry")
    assert await mock_upstream.requests() == []


async def test_unexpected_exception_is_a_500_that_hides_the_details(raising_proxy: RunningProxy) -> None:
    status, headers, raw = await post(
        raising_proxy.url + "/chat/completions",
        {"model": "mock-gpt", "messages": MESSAGES, "raise": "RuntimeError"},
        headers={"x-request-id": "req-500"},
    )
    assert status == 500
    assert json.loads(raw) == {
        "error": {
            "message": "internal error (request_id=req-500)",
            "type": "server_error",
            "param": None,
            "code": "internal_error",
        }
    }
    assert b"sk-live" not in raw and headers["x-request-id"] == "req-500"


async def test_retry_after_reaches_the_sdk(raising_proxy: RunningProxy) -> None:
    async with raising_proxy.client() as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(
                model="mock-gpt",
                messages=MESSAGES,
                extra_body={"raise": "RetryAfter"},
            )
    assert info.value.response.headers["retry-after"] == "7"
    assert info.value.code == "rate_limit_exceeded"


async def test_sdk_does_not_retry_a_deterministic_refusal(raising_proxy: RunningProxy) -> None:
    async with openai.AsyncOpenAI(base_url=raising_proxy.url, api_key="sk-test", max_retries=3) as client:
        with pytest.raises(openai.RateLimitError) as info:
            await client.chat.completions.create(
                model="mock-gpt",
                messages=MESSAGES,
                extra_body={"raise": "BudgetExceeded"},
            )
    assert info.value.code == "budget_exceeded"
    assert Raiser.calls == 1  # x-should-retry: false, so the SDK asked once


async def test_error_after_the_stream_started_is_one_sse_error_event(raising_proxy: RunningProxy) -> None:
    body = {"model": "mock-gpt", "messages": MESSAGES, "stream": True, "fail_stream": True}
    status, headers, raw = await post(raising_proxy.url + "/chat/completions", body)
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    events = sse_data(raw)
    assert len(events) == 3  # two chunks went out before the failure
    assert events[-1] == {
        "error": {
            "message": "the answer broke a rule",
            "type": "upstream_error",
            "param": None,
            "code": "judge_rejected",
        }
    }
    assert "[DONE]" not in events

    async with raising_proxy.client() as client:
        stream: Any = await client.chat.completions.create(
            model="mock-gpt",
            messages=MESSAGES,
            stream=True,
            extra_body={"fail_stream": True},
        )
        with pytest.raises(openai.APIError, match="the answer broke a rule"):
            async for _ in stream:
                pass


async def test_upstream_error_status_and_body_pass_through(proxy: RunningProxy, mock_upstream: MockUpstream) -> None:
    messages = [{"role": "user", "content": "hi [[mock:status=429,retry_after=3]]"}]
    status, headers, raw = await post(proxy.url + "/chat/completions", {"model": "mock-gpt", "messages": messages})
    assert status == 429
    assert headers["Retry-After"] == "3"
    assert "x-should-retry" not in headers  # an upstream 429 may well succeed later
    body = json.loads(raw)
    assert set(body["error"]) >= SHAPE
    assert (await mock_upstream.requests())[-1]["outcome"] == "error"


async def test_unknown_route_outside_v1_is_an_openai_404(proxy: RunningProxy) -> None:
    base = proxy.url.removesuffix("/v1")
    async with aiohttp.ClientSession() as session, session.get(base + "/nope") as r:
        assert r.status == 404
        assert r.headers["x-request-id"]
        assert await r.json() == {
            "error": {
                "message": "Unknown request URL: GET /nope",
                "type": "invalid_request_error",
                "param": None,
                "code": "unknown_url",
            }
        }


async def test_wrong_method_is_an_openai_405(proxy: RunningProxy) -> None:
    base = proxy.url.removesuffix("/v1")
    async with aiohttp.ClientSession() as session, session.post(base + "/healthz") as r:
        assert r.status == 405
        assert r.headers["x-request-id"]
        assert r.headers["x-should-retry"] == "false"
        body = await r.json()
    assert set(body["error"]) == SHAPE
    assert body["error"]["code"] == "method_not_allowed"
