"""Error answers on every path, including those aiohttp writes itself before any route or middleware runs.

Three places answer a request with an error:

1. the app's middleware (``proxy.server.request_middleware``): every ``ChaperoneError``, aiohttp
   ``HTTPException`` and unexpected exception raised by a handler (the direct routes, ``DIRECT``, which
   skip the router, call the same function themselves);
2. aiohttp's request dispatch outside the middlewares: an ``Expect`` header it does not know (417)
   is raised before the middleware chain is entered;
3. aiohttp's protocol handler, when the request cannot be parsed at all (bad request line, header
   lines over 8190 bytes, a ``Content-Encoding`` it cannot decode): it answers in plain text.

All three write the same JSON through ``error_response`` (OpenAI's shape, Anthropic's on the
Messages paths). ``ProxyRunner`` is the ``web.AppRunner`` that covers 2 and 3; serve the proxy with it.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web, web_protocol
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError

from proxy import messages_api
from proxy.errors import (
    ChaperoneError,
    HTTPRefusal,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    UnsupportedEncoding,
)

log = logging.getLogger(__name__)

__all__ = [
    "ACCEPT_ENCODING",
    "DECODED",
    "ProxyRunner",
    "error_response",
    "from_http_exception",
    "read_body",
    "request_id_for",
    "unreadable_body",
]

# The request content codings the proxy decodes (``read_body``); any other is a 415.
DECODED = frozenset({"gzip", "x-gzip", "deflate"})
ACCEPT_ENCODING = "gzip, deflate"

_CLIENT_ID = re.compile(r"^[\x21-\x7e]{1,128}$")
# Request ids: a random per-process prefix and a counter; unique across replicas and restarts,
# and cheaper than a uuid4 (no syscall) on every request.
_ID_PREFIX = secrets.token_hex(6)
_ID_COUNTER = itertools.count(1)


def request_id_for(headers: Mapping[str, str]) -> str:
    """The client's ``x-request-id`` when it is a sane token, else a new one."""
    client_id = headers.get("x-request-id")
    return client_id if client_id and _CLIENT_ID.match(client_id) else f"{_ID_PREFIX}{next(_ID_COUNTER):010x}"


class Unnamed(web.Response):
    """A response that does not name the server's software.

    aiohttp adds ``Server: Python/3.x aiohttp/x`` while preparing the headers; the app's
    ``on_response_prepare`` hook removes it from what the router dispatches, but a request aiohttp
    cannot parse is answered by the protocol layer with no app (``_JsonErrors``), and the direct
    routes (``DIRECT``) skip the router and its signals: these responses remove it themselves, just
    before the headers are written.
    """

    async def _write_headers(self) -> None:
        self.headers.popall("Server", None)
        await super()._write_headers()


class UnnamedStream(web.StreamResponse):
    """``Unnamed`` for a streamed answer."""

    async def _write_headers(self) -> None:
        self.headers.popall("Server", None)
        await super()._write_headers()


def error_response(exc: ChaperoneError, request_id: str, path: str = "") -> web.Response:
    """The error as JSON: OpenAI's shape, or Anthropic's on the Messages paths (whose clients parse that)."""
    headers = exc.headers()
    headers["x-request-id"] = request_id
    if path.startswith("/v1/messages"):
        body = messages_api.error_body(exc, request_id=request_id)
    else:
        body = exc.body_bytes()
    return Unnamed(status=exc.http_status, body=body, content_type="application/json", headers=headers)


def from_http_exception(exc: web.HTTPException, method: str, path: str) -> ChaperoneError:
    """The ``ChaperoneError`` for an aiohttp ``HTTPException`` (raised by aiohttp or a handler)."""
    if isinstance(exc, web.HTTPNotFound):
        return NotFound(f"Unknown request URL: {method} {path}", code="unknown_url")
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = ", ".join(sorted(exc.allowed_methods))
        return MethodNotAllowed(f"{method} is not allowed on {path}", headers={"Allow": allowed} if allowed else None)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return PayloadTooLarge(exc.text or "Request body too large.")
    message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
    if exc.status >= 500:
        return ChaperoneError(message or "server error", code=None)
    return HTTPRefusal(exc.status, message or "HTTP error", code=_snake(exc.reason))


def _snake(reason: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", reason.lower()).strip("_") or "http_error"


# ---- request bodies ------------------------------------------------------------------------


async def read_body(request: web.BaseRequest, limit: int) -> bytes:
    """The request body, decoded, refused with a 413 past ``limit`` bytes *after* decoding.

    A compressed body is inflated here, as it arrives, up to ``limit + 1`` bytes and no further: a
    decompression bomb costs at most ``limit`` bytes of work. A coding the proxy does not decode is a
    415, a body that does not decode (or whose chunked framing is broken) a 400 ``invalid_body``.
    Under a plain ``web.AppRunner`` aiohttp has inflated the body already; it is only counted then.
    """
    length = request.content_length
    if length is not None and length > limit:
        raise PayloadTooLarge(f"Request body is {length} bytes; the limit is {limit} bytes.")
    coding = _coding(request.headers.get("Content-Encoding"))
    try:
        if coding is not None and isinstance(request.protocol, _JsonErrors):  # the body arrives as sent
            inflater = _Inflater(coding, limit)
            async for data in request.content.iter_any():
                inflater.feed(data)
            return inflater.result()
        if length is not None and coding is None:
            return await request.read()
        body = bytearray()
        async for data in request.content.iter_any():
            body += data
            if len(body) > limit:
                raise PayloadTooLarge(f"Request body is larger than the limit of {limit} bytes once decoded.")
        return bytes(body)
    except web.RequestPayloadError as exc:
        raise unreadable_body(exc) from None


def unreadable_body(exc: web.RequestPayloadError) -> ChaperoneError:
    """A body aiohttp could not read (bad chunked framing, a coding that does not decode) as a 400."""
    cause = exc.__cause__
    reason = getattr(cause, "message", None) or str(cause or exc) or "malformed body"
    return InvalidRequest(f"The request body could not be read: {reason}.", code="invalid_body")


def _coding(header: str | None) -> str | None:
    """The one content coding to undo, None for none; a 415 for codings (or stacks of them) not decoded here."""
    if header is None:
        return None
    coding = header.strip().lower()
    if coding in ("", "identity"):
        return None
    if coding not in DECODED:
        raise UnsupportedEncoding(header[:64], ACCEPT_ENCODING)
    return "gzip" if coding == "x-gzip" else coding


class _Inflater:
    """Undo gzip (one or more members) or deflate (zlib-wrapped or raw), never past ``limit`` bytes out."""

    def __init__(self, coding: str, limit: int) -> None:
        self.coding = coding
        self.limit = limit
        self.out = bytearray()
        self._decoder: Any = None  # zlib's decompressobj type is not importable

    def feed(self, data: bytes) -> None:
        try:
            while data:
                if self._decoder is None:
                    self._decoder = zlib.decompressobj(self._wbits(data))
                self.out += self._decoder.decompress(data, self.limit + 1 - len(self.out))
                if len(self.out) > self.limit:
                    raise PayloadTooLarge(f"Request body is larger than the limit of {self.limit} bytes once decoded.")
                data = b""
                if self._decoder.eof:  # a gzip body may be several members end to end
                    data, self._decoder = self._decoder.unused_data, None
        except zlib.error as exc:
            raise InvalidRequest(
                f"The request body does not decode as {self.coding}: {exc}.", code="invalid_body"
            ) from None

    def result(self) -> bytes:
        if self._decoder is not None:
            raise InvalidRequest(f"The request body ends inside its {self.coding} stream.", code="invalid_body")
        return bytes(self.out)

    def _wbits(self, first: bytes) -> int:
        if self.coding == "gzip":
            return 16 + zlib.MAX_WBITS
        return zlib.MAX_WBITS if first[0] & 0x0F == 8 else -zlib.MAX_WBITS  # zlib-wrapped, else raw (as aiohttp)


# ---- errors aiohttp answers itself ---------------------------------------------------------

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


DIRECT: web.AppKey[dict[tuple[str, str], Handler]] = web.AppKey("chaperone_direct_routes")
"""``(method, raw path)`` → a handler served without the router: under ``ProxyRunner`` the API routes
skip aiohttp's dispatch (resolving, the middleware chain, the response signals: ~8 µs per request in
process, a few % of the empty chain's CPU end to end). Such a handler is handed a request with no match
info (``request.app`` does not work), answers its own errors with ``error_response`` and sends
``Unnamed`` responses. A path with a query or an escape, or a request with ``Expect``, takes the router
as every other route does."""


def _outermost(inner: Handler, direct: Mapping[tuple[str, str], Handler] | None = None) -> Handler:
    """Wrap the app's dispatch: the direct routes first; an ``HTTPException`` raised outside the middlewares
    (``Expect``) becomes JSON."""

    async def handle(request: web.BaseRequest) -> web.StreamResponse:
        if direct:
            hot = direct.get((request.method, request.raw_path))
            if hot is not None and "Expect" not in request.headers:
                return await hot(request)
        try:
            return await inner(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error_response(
                from_http_exception(exc, request.method, request.path), request_id_for(request.headers), request.path
            )

    return handle


class _JsonErrors(web_protocol.RequestHandler):
    """aiohttp's protocol handler, answering requests it cannot parse with JSON instead of plain text.

    It leaves request bodies encoded (``auto_decompress=False``): ``read_body`` inflates them, bounded.
    """

    __slots__ = ()

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:  # the answer started already: nothing sane can follow
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        request_id = request_id_for({})
        error: ChaperoneError
        if isinstance(exc, ContentEncodingError):  # aiohttp lacks the library for this coding (br, zstd)
            error = UnsupportedEncoding(None, ACCEPT_ENCODING)
        elif isinstance(exc, HttpProcessingError) and 400 <= status < 500:
            error = HTTPRefusal(status, f"Malformed HTTP request: {exc.message or message or 'bad request'}")
        else:
            self.log_exception("unhandled error (request_id=%s)", request_id, exc_info=exc)
            error = ChaperoneError(f"internal error (request_id={request_id})")
        if isinstance(error, HTTPRefusal | UnsupportedEncoding):
            log.debug("refused an unparseable request (request_id=%s): %s", request_id, error.message)
        response = error_response(error, request_id)
        response.force_close()  # the parser cannot find the next request on this connection
        return response


class _Server(web.Server):
    """The ``web.Server`` aiohttp built for the app, with JSON protocol errors and the outer wrapper."""

    def __init__(self, built: web.Server, direct: Mapping[tuple[str, str], Handler] | None = None) -> None:
        self.__dict__.update(built.__dict__)  # its loop, handler arguments and request factory
        self.request_handler = _outermost(built.request_handler, direct)

    def __call__(self) -> web_protocol.RequestHandler:
        kwargs: dict[str, Any] = {**self._kwargs, "auto_decompress": False}  # ``read_body`` inflates, bounded
        return _JsonErrors(self, loop=self._loop, **kwargs)


class ProxyRunner(web.AppRunner):
    """``web.AppRunner`` whose every error answer, parsed or not, is OpenAI-shaped JSON, and which serves
    the app's ``DIRECT`` routes without the router."""

    async def _make_server(self) -> web.Server:
        built = await super()._make_server()
        app = self.app
        return _Server(built, app.get(DIRECT) if isinstance(app, web.Application) else None)
