"""Hostile input at the edge: some 700 malformed requests against one running proxy, over real sockets.

Every answer must be a client error (or a success, where the request is odd but valid) and never a
500 from the proxy itself; every error body is the OpenAI error JSON (Anthropic's on /v1/messages);
nothing the client sent is reflected into a header; the proxy logs no unhandled error; and it
still serves the openai SDK normally afterwards.
"""

from __future__ import annotations

import json
import re
from typing import Any

import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.edge import corpus
from tests.edge.conftest import EdgeProxy, Http, Result, Wire

pytestmark = pytest.mark.usefixtures("no_crash_logs")
CLIENT_ERRORS = frozenset({400, 401, 403, 404, 405, 408, 411, 413, 414, 415, 417, 422, 429, 431})


def error_of(result: Result) -> dict[str, Any]:
    """The error object of an error answer, checked for the shape its path promises."""
    assert result.headers.get("content-type", "").startswith("application/json"), result.headers
    body = json.loads(result.body)
    case = result.case
    if isinstance(case, Http) and case.path.startswith("/v1/messages"):  # the Anthropic shape there
        assert body["type"] == "error" and set(body["error"]) >= {"type", "message"}, body
        return {"message": body["error"]["message"], "type": body["error"]["type"], "param": None, "code": None}
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and (error["param"] is None or isinstance(error["param"], str)), error
    return dict(error)


def check(result: Result) -> None:
    """The rules every answer in the corpus follows."""
    case = result.case
    what = f"{case.label}: {result.status} {result.body[:300]!r}"
    if result.status is None:
        assert "timeout" not in result.headers, f"{case.label}: {result.headers['timeout']}"
        assert isinstance(case, Wire) and case.may_close, f"{case.label}: closed without an answer"
        return
    assert result.status < 500, what
    assert "x-request-id" in result.headers, what
    assert "injected" not in result.headers and "set-cookie" not in result.headers, what
    assert re.fullmatch(r"[\x21-\x7e]+", result.headers["x-request-id"]), what
    if isinstance(case, Http) and case.expect:
        assert result.status in case.expect, what
    if result.status < 400:
        return
    assert result.status in CLIENT_ERRORS, what
    if isinstance(case, Http) and case.method == "HEAD":
        return  # no body on HEAD answers
    error = error_of(result)
    if isinstance(case, Http) and case.code is not None and not case.path.startswith("/v1/messages"):
        assert error["code"] == case.code, what
    if isinstance(case, Http) and case.top is not None and error["param"]:
        assert re.split(r"[.\[]", error["param"])[0] == case.top, what


def run(edge: EdgeProxy, cases: list[Http] | list[Wire]) -> list[Result]:
    results = edge.send_all(cases)
    failures = []
    for result in results:
        try:
            check(result)
        except AssertionError as exc:
            failures.append(str(exc).splitlines()[0])
    assert not failures, f"{len(failures)} of {len(results)} failed:\n" + "\n".join(failures[:20])
    return results


def test_every_field_broken_in_turn(edge_proxy: EdgeProxy) -> None:
    results = run(edge_proxy, list(corpus.mutations(per_node=2)))
    refused = [r for r in results if r.status == 400]
    assert len(results) > 350 and len(refused) > len(results) // 2  # the corpus is mostly refusals


def test_whole_body_faults(edge_proxy: EdgeProxy) -> None:
    run(edge_proxy, list(corpus.bodies()))


def test_methods_and_paths(edge_proxy: EdgeProxy) -> None:
    results = run(edge_proxy, list(corpus.routes()))
    unknown = [r for r in results if isinstance(r.case, Http) and r.case.path == "/v2/chat/completions"]
    assert {r.status for r in unknown} == {404}


def test_raw_bytes_on_the_wire(edge_proxy: EdgeProxy) -> None:
    results = run(edge_proxy, list(corpus.wire()))
    answered = {r.case.label: r for r in results}
    assert answered["garbage line"].status == 400
    assert answered["TLS hello"].status == 400
    assert answered["length and chunked"].status == 400  # a smuggling shape, refused outright


def test_a_broken_part_never_reaches_the_upstream(edge_proxy: EdgeProxy) -> None:
    assert edge_proxy.upstream_requests(clear=True) == 0
    messages: Any = [
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "text", "text": {"x": 1}}]}
    ]
    with openai.OpenAI(base_url=edge_proxy.base + "/v1", api_key="sk-edge", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="mock-gpt", messages=messages)
        assert err.value.param == "messages[0].content[1].text"
        assert err.value.code == "invalid_value"
        messages[0]["content"][1] = {"type": "input_image", "image_url": "https://example.com/cat.png"}
        with pytest.raises(openai.BadRequestError) as err:  # a Responses part in a chat message
            client.chat.completions.create(model="mock-gpt", messages=messages)
        assert err.value.param == "messages[0].content[1].type"
    assert edge_proxy.upstream_requests() == 0


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
TARGETS = [(endpoint, path) for endpoint, valid in corpus.VALID.items() for path in corpus.nodes(valid)]


@settings(max_examples=120, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
@given(target=st.sampled_from(TARGETS), value=JSON_VALUES)
def test_any_json_anywhere(edge_proxy: EdgeProxy, target: tuple[str, tuple[str | int, ...]], value: Any) -> None:
    """Property: any JSON value at any field of any endpoint's body is answered, never crashed on."""
    endpoint, path = target
    body = corpus.render(corpus.replace(corpus.VALID[endpoint], path, value))
    check(edge_proxy.send(Http("POST", endpoint, body, corpus.JSON, label=f"{endpoint} {corpus.show(path)}")))


def test_still_serves_normally_afterwards(edge_proxy: EdgeProxy) -> None:
    with openai.OpenAI(base_url=edge_proxy.base + "/v1", api_key="sk-edge", max_retries=0) as client:
        answer = client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hello"}])
        assert answer.choices[0].message.content == "Mock reply to: hello"
        chunks = list(client.chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": "hello"}], stream=True
        ))  # fmt: skip
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Mock reply to: hello"
        assert client.embeddings.create(model="mock-embed", input="hello").data
