"""The lean upstream client over TLS: certificates are verified (against the trusted CAs, which
``SSL_CERT_FILE`` can extend), the host name is checked, and a failed handshake is a clear error."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trustme
from aiohttp import web

from backends import http1
from backends.openai import map_errors
from proxy.errors import UpstreamError


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_upstream(ca: trustme.CA) -> AsyncIterator[int]:
    """An aiohttp server on 127.0.0.1 whose certificate (from the throwaway CA) names ``localhost``."""

    async def echo(request: web.Request) -> web.Response:
        return web.json_response({"path": request.path, "body": (await request.read()).decode()})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", echo)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(context)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await runner.cleanup()


async def test_a_trusted_certificate_carries_the_call(
    tls_upstream: int, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # what an operator with a private CA sets
    client = http1.Http1Client(f"https://localhost:{tls_upstream}/v1", limit=2)
    for _ in range(2):
        resp = await client.post("/chat/completions", b'{"a": 1}', {}, connect_s=5, read_s=5)
        assert (resp.status, await resp.read()) == (200, b'{"path": "/v1/chat/completions", "body": "{\\"a\\": 1}"}')
    assert len(client._idle) == 1  # one TLS connection, kept alive and reused
    await client.close()


async def test_an_untrusted_certificate_is_refused(tls_upstream: int) -> None:
    client = http1.Http1Client(f"https://localhost:{tls_upstream}/v1", limit=1)
    with pytest.raises(http1.ConnectFailed, match="CERTIFICATE_VERIFY_FAILED"):
        await client.post("/chat/completions", b"{}", {}, connect_s=5, read_s=5)
    with pytest.raises(UpstreamError, match="is unreachable") as info, map_errors("openai"):
        await client.post("/chat/completions", b"{}", {}, connect_s=5, read_s=5)
    assert info.value.code == "upstream_unreachable"
    await client.close()


async def test_a_certificate_for_another_name_is_refused(
    tls_upstream: int, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    client = http1.Http1Client(f"https://127.0.0.1:{tls_upstream}/v1", limit=1)  # the cert names localhost only
    with pytest.raises(http1.ConnectFailed, match=r"match|mismatch"):
        await client.post("/chat/completions", b"{}", {}, connect_s=5, read_s=5)
    await client.close()
