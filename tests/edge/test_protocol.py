"""Request bodies in content codings, decompression bombs, and the errors aiohttp would answer in plain text."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from proxy.errors import HTTPRefusal, InvalidRequest, PayloadTooLarge, UnsupportedEncoding
from proxy.protocol import _Inflater
from proxy.server import create_app
from proxy.settings import Settings
from tests.conftest import MockUpstream, simple_policy

BODY = json.dumps({"model": "mock-gpt", "messages": [{"role": "user", "content": "hello"}]}).encode()


def test_the_edge_errors_carry_their_status_and_headers() -> None:
    unsupported = UnsupportedEncoding("br", "gzip, deflate")
    assert unsupported.http_status == 415
    assert unsupported.headers() == {"Accept-Encoding": "gzip, deflate", "x-should-retry": "false"}
    assert unsupported.body()["error"]["code"] == "unsupported_content_encoding"
    refusal = HTTPRefusal(417, "Unknown Expect: tea", code="expectation_failed")
    assert (refusal.http_status, refusal.body()["error"]["type"]) == (417, "invalid_request_error")


def inflate(coding: str, data: bytes, limit: int, piece: int = 7) -> bytes:
    inflater = _Inflater(coding, limit)
    for i in range(0, len(data), piece):
        inflater.feed(data[i : i + piece])
    return inflater.result()


def test_inflating_gzip_and_both_deflate_flavours() -> None:
    assert inflate("gzip", gzip.compress(BODY), 1024) == BODY
    assert inflate("gzip", gzip.compress(BODY[:20]) + gzip.compress(BODY[20:]), 1024) == BODY  # two members
    assert inflate("deflate", zlib.compress(BODY), 1024) == BODY  # zlib-wrapped, as RFC 9110 says
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert inflate("deflate", raw.compress(BODY) + raw.flush(), 1024) == BODY  # raw, as many clients send


def test_inflating_stops_at_the_limit() -> None:
    exact = gzip.compress(b"a" * 4096)
    assert len(inflate("gzip", exact, 4096, piece=1 << 20)) == 4096
    with pytest.raises(PayloadTooLarge):
        inflate("gzip", exact, 4095, piece=1 << 20)
    bomb = gzip.compress(b"\0" * (16 << 20))  # 16 MiB of zeros in ~16 KiB
    inflater = _Inflater("gzip", 4096)
    with pytest.raises(PayloadTooLarge):
        inflater.feed(bomb)
    assert len(inflater.out) == 4097  # never inflated past limit + 1


@pytest.mark.parametrize(
    "data",
    [b"not gzip at all", gzip.compress(BODY)[:-5], gzip.compress(BODY) + b"trailing junk"],
    ids=["junk", "truncated", "trailing junk"],
)
def test_a_body_that_does_not_decode_is_a_400(data: bytes) -> None:
    with pytest.raises(InvalidRequest) as err:
        inflate("gzip", data, 1 << 20)
    assert err.value.code == "invalid_body"


async def test_under_a_plain_app_runner_aiohttp_inflates_and_the_limit_still_holds(
    mock_upstream: MockUpstream, write_policy: Callable[[str], Path], tmp_path: Path
) -> None:
    """Without ``ProxyRunner`` aiohttp has inflated the body already; it is counted, not inflated twice."""
    policy = write_policy(simple_policy(mock_upstream.url, extra="limits: {max_body_bytes: 4096}\n"))
    runner = web.AppRunner(create_app(Settings(policy_path=policy, home=tmp_path / "home", reload_interval_s=0)))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}/v1/chat/completions"
    gzipped = {"Content-Encoding": "gzip", "Content-Type": "application/json", "Authorization": "Bearer k"}
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(url, data=gzip.compress(BODY), headers=gzipped) as ok:
                assert ok.status == 200
            big = BODY[:-3] + b" " * 8192 + BODY[-3:]
            async with http.post(url, data=gzip.compress(big), headers=gzipped) as refused:
                assert refused.status == 413
                assert (await refused.json())["error"]["code"] == "payload_too_large"
            async with http.post(url, data=b"garbage, not gzip", headers=gzipped) as broken:
                assert broken.status == 400
                assert (await broken.json())["error"]["code"] == "invalid_body"
    finally:
        await runner.cleanup()
