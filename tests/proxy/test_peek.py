"""``ApiResponse.peek``: one parse of an upstream answer for every reader, while the raw bytes are what is sent."""

from __future__ import annotations

from proxy.exchange import ApiResponse


def test_raw_is_parsed_once_and_stays_what_is_sent() -> None:
    raw = b'{"id": "a", "usage": {"prompt_tokens": 3}}'
    response = ApiResponse(200, raw=raw)
    first = response.peek()
    assert first == {"id": "a", "usage": {"prompt_tokens": 3}}
    assert response.peek() is first  # the cost, budget and cache plugins and the handler share it
    assert response.body is None and response.raw is raw  # not turned into a body to re-serialise


def test_new_raw_bytes_are_parsed_again_and_a_body_wins() -> None:
    response = ApiResponse(200, raw=b'{"n": 1}')
    assert response.peek() == {"n": 1}
    response.raw = b'{"n": 2}'  # a plugin replaced the answer
    assert response.peek() == {"n": 2}
    response.body = {"n": 3}
    assert response.peek() == {"n": 3}


def test_no_body_broken_json_or_not_an_object_peek_as_none() -> None:
    assert ApiResponse(200).peek() is None
    assert ApiResponse(200, raw=b"{not json").peek() is None
    assert ApiResponse(200, raw=b"[1, 2]").peek() is None
