"""One inference request's life: JSON body, parameter checks, fault resolution, latency/hang/status, drops."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .errors import MockError, invalid_request, status_fault
from .faults import FaultSpec, FaultSpecError, apply_fail_times, header_fault, magic_fault
from .state import STATE, MockState, RequestRecord, record_of

# How often a wait checks whether the client went away when aiohttp does not cancel the handler
# (web.AppRunner without handler_cancellation=True).
POLL_SECONDS = 0.05
_BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
    "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)"
)


class ClientGone(Exception):
    """The client closed the connection while the mock was waiting; the middleware records it."""


@dataclass(slots=True)
class Call:
    """An inference request after parsing: its body and the fault spec that applies to it."""

    request: web.Request
    state: MockState
    record: RequestRecord
    body: dict[str, Any]
    fault: FaultSpec
    ambient: FaultSpec  # config + headers, before prompt markers

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True

    @property
    def include_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    @property
    def chunk_delay(self) -> float:
        return (self.fault.chunk_delay_ms or 0) / 1000

    async def enter(self) -> None:
        """Apply the waiting and failing parts of the fault: latency, then hang, then status."""
        if self.fault.latency_ms:
            await wait_for_client(self.request, self.fault.latency_ms / 1000)
        if self.fault.hang:
            self.record.outcome = "hung"
            await wait_for_client(self.request, math.inf)
        if self.fault.status is not None:
            retry_after = self.fault.retry_after
            if retry_after is None and self.fault.status in (429, 503):
                retry_after = 1
            raise status_fault(self.fault.status, retry_after)

    def drop(self) -> web.Response:
        """Close the socket now; the returned response is never delivered (aiohttp ignores the failed write)."""
        self.record.outcome = "dropped"
        transport = self.request.transport
        if transport is not None:
            transport.close()
        return web.Response()


async def read_json(request: web.Request) -> dict[str, Any]:
    """Parse the body as a JSON object (400 otherwise) and store it on the request record."""
    raw = await request.read()
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid_request(_BAD_JSON) from None
    if not isinstance(body, dict):
        raise invalid_request("The request body must be a JSON object.")
    record_of(request).body = body
    return body


def open_call(request: web.Request, body: dict[str, Any], texts: Iterable[str], param: str) -> Call:
    """Resolve the fault (config < ``x-mock-*`` headers < ``[[mock:...]]`` in ``texts``) and count ``fail_times``."""
    state = request.app[STATE]
    try:
        ambient = state.base_fault.merged(header_fault(request.headers))
    except FaultSpecError as exc:
        raise invalid_request(f"Invalid x-mock-* header: {exc}", code="invalid_mock_fault") from None
    try:
        fault = ambient.merged(magic_fault(texts))
    except FaultSpecError as exc:
        raise invalid_request(f"Invalid [[mock:...]] marker in {param!r}: {exc}", param, "invalid_mock_fault") from None
    fault = apply_fail_times(fault, state.fail_counts)
    return Call(request, state, record_of(request), body, fault, ambient)


async def wait_for_client(request: web.Request, seconds: float) -> None:
    """Sleep ``seconds`` (may be infinite); raise :class:`ClientGone` as soon as the client disconnects.

    When the server shuts down the wait ends early with a 503, so a ``hang`` never holds up a shutdown.
    """
    state = request.app[STATE]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (remaining := deadline - loop.time()) > 0:
        await asyncio.sleep(min(remaining, POLL_SECONDS))
        transport = request.transport
        if transport is None or transport.is_closing():
            raise ClientGone
        if state.closing:
            raise MockError(503, "The mock backend is shutting down.")


def require_model(body: dict[str, Any]) -> str:
    """The ``model`` field; any non-empty name is accepted and echoed back."""
    model = body.get("model")
    if model is None:
        raise invalid_request("you must provide a model parameter", "model", "missing_required_parameter")
    if not isinstance(model, str) or not model:
        raise invalid_request("Invalid type for 'model': expected a non-empty string.", "model", "invalid_type")
    return model


def int_param(body: dict[str, Any], name: str, default: int | None, low: int, high: int) -> int | None:
    """An optional integer parameter within ``[low, high]`` (null means the default)."""
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise invalid_request(f"Invalid '{name}': expected an integer between {low} and {high}.", name)
    return value


def usage(prompt_tokens: int, completion_tokens: int, *, details: bool = True) -> dict[str, Any]:
    """An OpenAI ``usage`` block; chat completions also carry the ``*_details`` breakdowns."""
    block: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if details:
        block["prompt_tokens_details"] = {"cached_tokens": 0, "audio_tokens": 0}
        block["completion_tokens_details"] = {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        }
    return block


async def cut_body(call: Call, response: web.Response) -> web.StreamResponse:
    """[reliability] Send the headers (with the full Content-Length) and half the body, then reset the socket."""
    body = response.body
    assert isinstance(body, bytes)
    out = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    out.content_length = len(body)
    await out.prepare(call.request)
    await out.write(body[: len(body) // 2])
    call.record.outcome = "dropped"
    transport = call.request.transport
    if transport is not None:
        transport.abort()
    return out


def json_response(document: Any) -> web.Response:
    """A JSON 200 response."""
    return web.Response(text=json.dumps(document), content_type="application/json")
