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

``--metered`` (``reference-metered`` in the harness) is the floor of any gateway that meters every
request, as issue 7's item 6 asks: on top of the relay it parses the request's JSON (a body that is not
an object with a string ``model`` gets a 400), gives the answer an ``x-request-id``, reads the answer's
``usage`` (``proxy.metrics.usage_from_raw``) and counts the request in Prometheus (requests by model and
status, a latency histogram by model, tokens in and out). Nothing else: no keys, no routing, no
validation, no chain, no access log. Chaperone's ratio to it is what Chaperone's design costs beyond
the features every metered gateway must pay for.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import itertools
import sys
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp
import orjson
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram

from backends import http1
from proxy.metrics import usage_from_raw

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


class Meter:
    """``--metered``: the request's model, an ``x-request-id``, the answer's usage, three Prometheus metrics.

    Each model's labelled series are looked up once and kept (``labels()`` takes a lock and hashes the
    labels on every call), so the floor pays only for the increments."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("requests", "requests", ["model", "status"], registry=self.registry)
        self.seconds = Histogram("request_seconds", "latency", ["model"], registry=self.registry)
        self.tokens = Counter("tokens", "tokens", ["model", "direction"], registry=self.registry)
        self.ids = itertools.count(1)
        self._series: dict[tuple[str, int], tuple[Any, Any, Any, Any]] = {}

    def record(self, model: str, status: int, seconds: float, answer: bytes | None) -> None:
        series = self._series.get((model, status))
        if series is None:
            series = self._series[model, status] = (
                self.requests.labels(model, str(status)),
                self.seconds.labels(model),
                self.tokens.labels(model, "input"),
                self.tokens.labels(model, "output"),
            )
        requests, seconds_series, tokens_in, tokens_out = series
        requests.inc()
        seconds_series.observe(seconds)
        usage = usage_from_raw(answer)
        if usage is not None:
            tokens_in.inc(usage.prompt_tokens)
            tokens_out.inc(usage.completion_tokens)


METER = web.AppKey("reference_meter", Meter)


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


async def forward_metered(request: web.Request) -> web.StreamResponse:
    """``forward_lean``, metered (``Meter``); a streamed answer is counted, its usage not read."""
    if request.method != "POST":
        return await forward(request)
    started = time.monotonic()
    body = await request.read()
    try:
        parsed = orjson.loads(body)
    except ValueError:
        parsed = None
    model = parsed.get("model") if type(parsed) is dict else None
    if type(model) is not str:
        error = {"message": "the body must be a JSON object with a string 'model'", "type": "invalid_request_error"}
        return web.json_response({"error": {**error, "code": "invalid_body"}}, status=400)
    meter = request.app[METER]
    upstream = await request.app[LEAN].post(
        request.raw_path, body, end_to_end(request.headers), connect_s=10, read_s=120
    )
    headers = end_to_end(upstream.headers)
    headers.pop("content-length", None)
    headers["x-request-id"] = f"ref{next(meter.ids):010x}"
    if upstream.content_type != "text/event-stream":
        answer = await upstream.read()
        meter.record(model, upstream.status, time.monotonic() - started, answer)
        return web.Response(status=upstream.status, body=answer, headers=headers)
    out = web.StreamResponse(status=upstream.status, headers=headers)
    await out.prepare(request)
    async for data in upstream.iter_any():
        await out.write(data)
    await out.write_eof()
    meter.record(model, upstream.status, time.monotonic() - started, None)
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


def create_app(
    upstream: str, max_connections: int = 1024, client: str = "http1", *, metered: bool = False
) -> web.Application:
    """The proxy app; the session opens at startup and closes at cleanup. ``metered`` needs the lean client."""
    if metered and client != "http1":
        raise ValueError("--metered runs on the lean client (--client http1)")
    app = web.Application(client_max_size=1024**3)
    app[UPSTREAM] = upstream.rstrip("/")
    if metered:
        app[METER] = Meter()

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
    relay = forward_metered if metered else forward_lean if client == "http1" else forward
    app.router.add_route("*", "/{tail:.*}", relay)
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
    parser.add_argument(
        "--metered",
        action="store_true",
        help="also parse the request, add an x-request-id and count it in Prometheus: a metered gateway's floor",
    )
    args = parser.parse_args(argv)
    if args.metered and args.client != "http1":
        parser.error("--metered runs on the lean client (--client http1)")
    print(f"reference proxy listening on http://{args.host}:{args.port} → {args.upstream}", flush=True)
    web.run_app(
        create_app(args.upstream, args.max_connections, args.client, metered=args.metered),
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
