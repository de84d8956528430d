"""The thinnest correct pass-through proxy: the reference every Chaperone CPU ratio is measured against.

An aiohttp server; the method, path, query, body and end-to-end headers go upstream unchanged; a
whole answer comes back in one ``web.Response`` (one read, one write: the cheapest relay aiohttp
has), a streamed one (``text/event-stream``) as its bytes arrive (``iter_any``), with no parsing of
JSON or SSE.

Upstream calls go through the client Chaperone uses for them (``--client http1``, the default: POSTs
through ``backends/http1.py``'s lean HTTP/1.1 client, anything else through a ``ClientSession``), so
the reference stays the thinnest relay there is and no ratio is flattered by a client the reference
pays for and Chaperone does not. ``--client aiohttp`` relays everything through one pooled
``ClientSession``: the reference of stops 1 to 23 (``reference-aiohttp`` in the harness), which costs
about twice the CPU per request. Run it as::

    python benchmarks/reference_proxy.py --upstream http://127.0.0.1:8001 --port 8090
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from collections.abc import AsyncIterator, Mapping

import aiohttp
from aiohttp import web

from backends import http1

# RFC 9110 §7.6.1 hop-by-hop headers, plus the ones each side recomputes for its own connection.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
    }
)
SESSION = web.AppKey("reference_session", aiohttp.ClientSession)
UPSTREAM = web.AppKey("reference_upstream", str)
LEAN = web.AppKey("reference_lean", http1.Http1Client)


def end_to_end(headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` minus hop-by-hop ones (and those named in ``Connection``)."""
    named = {h.strip().lower() for h in headers.get("connection", "").split(",") if h.strip()}
    return {k: v for k, v in headers.items() if k.lower() not in HOP_BY_HOP and k.lower() not in named}


async def forward_lean(request: web.Request) -> web.StreamResponse:
    """A POST through the lean client; anything else as ``forward`` sends it."""
    if request.method != "POST":
        return await forward(request)
    body = await request.read()
    upstream = await request.app[LEAN].post(
        request.raw_path, body, end_to_end(request.headers), connect_s=10, read_s=120
    )
    headers = end_to_end(upstream.headers)
    headers.pop("content-length", None)  # names come lower-cased
    if upstream.content_type != "text/event-stream":  # a whole body: one read, one write
        return web.Response(status=upstream.status, body=await upstream.read(), headers=headers)
    out = web.StreamResponse(status=upstream.status, headers=headers)
    await out.prepare(request)
    async for data in upstream.iter_any():
        await out.write(data)
    await out.write_eof()
    return out


async def forward(request: web.Request) -> web.StreamResponse:
    """Send the request upstream and stream the answer back, byte for byte."""
    session = request.app[SESSION]
    body = await request.read()
    url = request.app[UPSTREAM] + request.raw_path
    async with session.request(
        request.method,
        url,
        data=body or None,
        headers=end_to_end(request.headers),
        allow_redirects=False,
        auto_decompress=False,
    ) as upstream:
        headers = end_to_end(upstream.headers)
        if upstream.content_type != "text/event-stream":  # a whole body: one read, one write
            body = await upstream.read()
            headers = {k: v for k, v in headers.items() if k.lower() != "content-length"}
            return web.Response(status=upstream.status, reason=upstream.reason, body=body, headers=headers)
        out = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers)
        await out.prepare(request)
        async for data in upstream.content.iter_any():
            await out.write(data)
        await out.write_eof()
        return out


async def _tune_gc(app: web.Application) -> None:
    """The same collector settings ``chaperone serve`` uses (``proxy/gctune.py``): the reference gets every
    process-level advantage Chaperone has, so the ratios compare the request paths, nothing else."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 40)


def create_app(upstream: str, max_connections: int = 1024, client: str = "http1") -> web.Application:
    """The proxy app; the session opens at startup and closes at cleanup."""
    app = web.Application(client_max_size=1024**3)
    app[UPSTREAM] = upstream.rstrip("/")

    async def session_ctx(app: web.Application) -> AsyncIterator[None]:
        if client == "http1":
            app[LEAN] = http1.Http1Client(app[UPSTREAM], limit=max_connections, keepalive_s=30)
        connector = aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=30)
        app[SESSION] = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=120),
            skip_auto_headers=("User-Agent", "Accept-Encoding"),
            auto_decompress=False,
        )
        yield
        await app[SESSION].close()
        if client == "http1":
            await app[LEAN].close()

    app.cleanup_ctx.append(session_ctx)
    app.on_startup.append(_tune_gc)
    app.router.add_route("*", "/{tail:.*}", forward_lean if client == "http1" else forward)
    return app


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a Chaperone dependency
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A minimal aiohttp pass-through proxy (the benchmark reference).")
    parser.add_argument("--upstream", required=True, help="upstream origin, e.g. http://127.0.0.1:8001")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--max-connections", type=int, default=1024, help="upstream pool size (default: %(default)s)")
    parser.add_argument(
        "--client",
        choices=("http1", "aiohttp"),
        default="http1",
        help="upstream client for POSTs: Chaperone's lean one, or aiohttp's ClientSession (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    print(f"reference proxy listening on http://{args.host}:{args.port} → {args.upstream}", flush=True)
    web.run_app(
        create_app(args.upstream, args.max_connections, args.client),
        host=args.host,
        port=args.port,
        loop=_new_loop(),
        access_log=None,
        print=None,
        shutdown_timeout=1.0,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
