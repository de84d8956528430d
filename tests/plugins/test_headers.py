"""The headers plugin: config checked at load, then headers as the upstream and the client see them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxy.policy import PolicyError
from proxy.registry import PluginRegistry
from tests.chain_helpers import compile_chain_policy
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize(
    ("chain", "path", "words"),
    [
        (
            '[{headers: {request: {set: {x-team: "blue\\r\\nx-evil: 1"}}}}]',
            "chains.default[0].headers.request.set",
            "contains a line break",
        ),
        (
            '[{headers: {request: {set: {x-team: "blue\\nmore"}}}}]',
            "chains.default[0].headers.request.set",
            "contains a line break",
        ),
        (
            "[{headers: {request: {set: {Authorization: Bearer sk-x}}}}]",
            "chains.default[0].headers.request.set",
            "'authorization' is managed by the proxy",
        ),
        (
            "[params, {headers: {response: {set: {X-Request-ID: abc}}}}]",
            "chains.default[1].headers.response.set",
            "'x-request-id' is managed by the proxy",
        ),
        (
            "[{headers: {response: {set: {content-length: '5'}}}}]",
            "chains.default[0].headers.response.set",
            "'content-length' is managed",
        ),
        ('[{headers: {request: {set: {"x a": b}}}}]', "chains.default[0].headers.request.set", "is not a header name"),
        (
            '[{headers: {request: {remove: ["x-a: b"]}}}]',
            "chains.default[0].headers.request.remove",
            "is not a header name",
        ),
        ("[{headers: {request: {add: {x-a: b}}}}]", "chains.default[0].headers.request.add", "Extra inputs"),
        ("[{headers: {requests: {}}}]", "chains.default[0].headers.requests", "Extra inputs"),
    ],
    ids=[
        "crlf-value",
        "lf-value",
        "authorization",
        "request-id",
        "content-length",
        "space-in-name",
        "colon-in-removed-name",
        "unknown-rule",
        "unknown-direction",
    ],
)
def test_bad_config_is_rejected_naming_its_yaml_path(
    chain: str, path: str, words: str, registry: PluginRegistry
) -> None:
    with pytest.raises(PolicyError) as info:
        compile_chain_policy(chain, registry)
    (line,) = info.value.errors
    assert line.startswith(f"{path}: "), line
    assert words in line


# The outer step removes a header the inner step sets: response hooks run inner first, so it never arrives.
CHAIN = (
    "[{headers: {request: {set: {X-Team: blue}, remove: [X-Secret]},"
    " response: {set: {x-served-by: chaperone}, remove: [x-internal]}}},"
    " {headers: {response: {set: {x-internal: 'secret', x-inner: 'yes'}}}}]"
)


@pytest.fixture
async def headers_proxy(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> RunningProxy:
    return await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=CHAIN)))


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
async def test_request_and_response_headers_are_rewritten(
    stream: bool, headers_proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    async with headers_proxy.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="mock-gpt",
            messages=MESSAGES,
            stream=stream,
            extra_headers={"X-Secret": "s3cret", "X-Team": "red", "X-Keep": "kept"},
        )
        result: Any = raw.parse()
        if stream:
            chunks = [chunk async for chunk in result]
            assert chunks
        else:
            assert result.choices[0].message.content

    seen = {k.lower(): v for k, v in (await mock_upstream.requests())[-1]["headers"].items()}
    assert "x-secret" not in seen
    assert seen["x-team"] == "blue"  # set replaces the client's value
    assert seen["x-keep"] == "kept"

    assert raw.headers["x-served-by"] == "chaperone"
    assert raw.headers["x-inner"] == "yes"
    assert "x-internal" not in raw.headers
    assert raw.headers["x-request-id"]
    assert raw.headers["content-type"].startswith("text/event-stream" if stream else "application/json")
