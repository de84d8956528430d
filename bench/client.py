"""One request, timed as the client sees it: SSE events parsed as they arrive, errors classified by kind.

Times are ``time.perf_counter()`` seconds. For a stream: ``ttft`` is send → the first SSE event that
carries a choice (often a role-only chunk), ``ttfc`` send → the first event with non-empty content
(text, reasoning or tool-call arguments), ``itls`` the gaps between consecutive content events (the
first content event excluded). Events that arrive in one read share its timestamp, which is what
any client of that server would see. A failed request has ``error`` set (its kind) and is never
counted in latency figures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson

HEADERS = {"content-type": "application/json"}
SAMPLE_ERRORS = 3


def new_session(timeout_s: float = 300.0, read_timeout_s: float = 60.0) -> aiohttp.ClientSession:
    """A pooled client session with no connection limit (the load model decides concurrency)."""
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout_s, sock_read=read_timeout_s),
        skip_auto_headers=("User-Agent",),
    )


@dataclass(slots=True)
class Outcome:
    """What happened to one request (all times in seconds, relative to nothing until the runner shifts them)."""

    index: int
    kind: str
    start: float = 0.0
    end: float = 0.0
    scheduled: float | None = None
    status: int | None = None
    error: str | None = None
    detail: str = ""
    ttft: float | None = None
    ttfc: float | None = None
    itls: list[float] = field(default_factory=list)
    events: int = 0
    text: list[str] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    input_tokens: int = 0  # counted by the workload (tiktoken) before sending
    max_tokens: int = 0  # the output length asked for

    @property
    def e2e(self) -> float:
        return self.end - self.start


def _error_code(raw: bytes) -> str:
    try:
        err = orjson.loads(raw).get("error") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    code = err.get("code") or err.get("type") if isinstance(err, dict) else None
    return f":{code}" if code else ""


def _pieces(obj: dict[str, Any]) -> list[str]:
    """The content text of one chunk or answer: message/delta content, reasoning, tool-call arguments, text."""
    out: list[str] = []
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        part = choice.get("delta") or choice.get("message") or {}
        for key in ("content", "reasoning_content", "reasoning"):
            value = part.get(key) if isinstance(part, dict) else None
            if isinstance(value, str) and value:
                out.append(value)
        for call in (part.get("tool_calls") if isinstance(part, dict) else None) or ():
            args = (call.get("function") or {}).get("arguments") if isinstance(call, dict) else None
            if isinstance(args, str) and args:
                out.append(args)
        text = choice.get("text")
        if isinstance(text, str) and text:
            out.append(text)
    return out


async def send(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], body: bytes, out: Outcome, stream: bool
) -> None:
    """Send ``body`` and fill ``out``; exceptions become an error kind, never propagate (except cancellation)."""
    out.start = time.perf_counter()
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            out.status = resp.status
            if resp.status != 200:
                raw = await resp.read()
                out.error = f"http_{resp.status}{_error_code(raw)}"
                out.detail = raw[:200].decode(errors="replace")
            elif stream:
                await _read_stream(resp, out)
            else:
                _read_whole(await resp.read(), out)
    except TimeoutError:
        out.error = "timeout"
    except aiohttp.ClientConnectorError as exc:
        out.error, out.detail = "connect", str(exc)
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, ConnectionResetError) as exc:
        out.error, out.detail = "disconnected", str(exc)
    except aiohttp.ClientError as exc:
        out.error, out.detail = f"client:{type(exc).__name__}", str(exc)
    out.end = time.perf_counter()


def _read_whole(raw: bytes, out: Outcome) -> None:
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj = None
    if not isinstance(obj, dict) or not isinstance(obj.get("choices"), list):
        out.error, out.detail = "bad_response", raw[:200].decode(errors="replace")
        return
    out.text = _pieces(obj)
    usage = obj.get("usage")
    out.usage = usage if isinstance(usage, dict) else None


async def _read_stream(resp: aiohttp.ClientResponse, out: Outcome) -> None:
    buf = b""
    done = False
    last_content: float | None = None
    async for data in resp.content.iter_any():
        now = time.perf_counter()
        buf += data.replace(b"\r\n", b"\n") if b"\r" in data else data
        while (cut := buf.find(b"\n\n")) >= 0:
            event, buf = buf[:cut], buf[cut + 2 :]
            for line in event.split(b"\n"):
                if not line.startswith(b"data:"):
                    continue
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    done = True
                    continue
                last_content = _event(payload, now, out, last_content)
                if out.error:
                    return
    if not done:
        out.error = out.error or "incomplete"
    elif out.ttfc is None:
        out.error = "empty"


def _event(payload: bytes, now: float, out: Outcome, last_content: float | None) -> float | None:
    """Account for one ``data:`` event; return the time of the latest content event."""
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        out.error, out.detail = "bad_event", payload[:200].decode(errors="replace")
        return last_content
    if not isinstance(obj, dict):
        return last_content
    if "error" in obj:
        err = obj["error"] if isinstance(obj["error"], dict) else {}
        out.error = f"stream_error:{err.get('code') or err.get('type') or 'unknown'}"
        out.detail = payload[:200].decode(errors="replace")
        return last_content
    out.events += 1
    if isinstance(obj.get("usage"), dict):
        out.usage = obj["usage"]
    if out.ttft is None and obj.get("choices"):
        out.ttft = now - out.start
    pieces = _pieces(obj)
    if not pieces:
        return last_content
    out.text.extend(pieces)
    if last_content is None:
        out.ttfc = now - out.start
    else:
        out.itls.append(now - last_content)
    return now
