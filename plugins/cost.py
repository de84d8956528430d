"""Count what each request cost, by key, model and day: usage from the upstream (asked for on streams), else counted.

Put ``cost`` first in the chain: its ``on_complete`` then sees every request, cache hits (priced 0,
with what they saved) and early answers included. On a stream it keeps the bytes the client got
(``observe_bytes``: nothing is parsed while the stream runs) and reads only their ends for the usage
and the model, the whole only when the usage is missing (a cut stream, an upstream that reports none).
The usage chunk it asks for and the client did not is dropped by the chain, after recording it.
For a whole answer the cost is known before it is sent and goes out in ``x-chaperone-cost`` (USD,
when the upstream reported usage and the model has a price); a stream's cost is known only after its
last event, so it is in the records, never in a header. Records (no prompt or answer text) go to a
rotating JSON-lines file, stdout and OpenTelemetry metrics; per-day counters in the store feed
``GET /chaperone/usage`` and ``chaperone usage`` (``proxy.usage``).

Sets ``exchange.cost_usd`` (None when the model has no price) and ``exchange.verdicts["cost"]``
(``priced`` | ``unpriced``) in ``on_complete``; for estimated or partial streams it also puts the
counted tokens in ``exchange.usage``, so later ``on_complete`` steps see them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

from opentelemetry import metrics
from pydantic import BaseModel, ConfigDict, Field

from plugins._cost import account
from plugins._cost.account import StreamTally
from plugins._cost.sinks import LineSinks, MeterSink
from proxy import ApiResponse, ChaperoneError, Exchange, PluginRegistry, StashKey, Usage, hookimpl
from proxy.metrics import fast_usage
from proxy.pricing import ask_stream_usage, cost_usd
from proxy.requestlog import SAVED_USD  # [console]
from proxy.runtime import Resources
from proxy.usage import NANO, OPEN_KEY, Ledger, day_of

log = logging.getLogger(__name__)
TALLY = StashKey[StreamTally]()
_SEEN_USAGE_ENDPOINTS = frozenset({"chat", "completions"})
_READ_INLINE_BLOCKS = 256  # a stream with more blocks is parsed on a worker thread when its text must be counted


class JsonlConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    path: str = Field(
        default="usage/cost.jsonl",
        description="File for one JSON record per request; relative to the Chaperone home; '{pid}' and '{worker}' are "
        "replaced; with serve --workers, each worker gets its own file (.w<index> when neither is given).",
    )
    max_bytes: int = Field(default=10 * 1024 * 1024, ge=1024, description="Rotate when the file reaches this size.")
    keep: int = Field(default=5, ge=1, le=1000, description="Rotated files kept (cost.jsonl.1 … .N).")


class CostConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    header: bool = Field(default=True, description="Send x-chaperone-cost (USD) on whole answers whose cost is known.")
    jsonl: JsonlConfig | None = Field(default=None, description="Write records to a rotating JSON-lines file.")
    stdout: bool = Field(default=False, description="Write records to stdout as JSON lines.")
    otel: bool = Field(
        default=True, description="Add cost and tokens to OpenTelemetry metrics (no-op without a provider)."
    )
    aggregate: bool = Field(default=True, description="Keep per key/model/day counters for /chaperone/usage.")
    flush_s: float = Field(
        default=1.0, ge=0, le=3600, description="Write the counters every this many seconds (0: at each request)."
    )


class Cost:
    name = "cost"
    Config = CostConfig

    def __init__(
        self,
        config: CostConfig,
        *,
        meter_provider: metrics.MeterProvider | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.clock = clock
        self._provider = meter_provider
        self._meter: MeterSink | None = None  # made at startup, when a meter provider is configured
        self._lines: LineSinks | None = None
        self.ledger: Ledger | None = None
        self._book = account.PriceBook()
        self._days: tuple[int, str] = (-1, "")

    def _day(self, now: float) -> str:
        index = int(now // 86400)
        if index != self._days[0]:
            self._days = (index, day_of(now))
        return self._days[1]

    @hookimpl
    async def on_startup(self, resources: Resources) -> None:
        config = self.config
        if config.otel:
            self._meter = MeterSink.configured(self._provider)
        if config.jsonl is not None or config.stdout:
            path = resources.home / config.jsonl.path if config.jsonl is not None else None
            jsonl = config.jsonl or JsonlConfig()
            self._lines = await asyncio.to_thread(  # mkdir and open: not on the event loop
                LineSinks, path, max_bytes=jsonl.max_bytes, keep=jsonl.keep, stdout=config.stdout
            )
        if config.aggregate:
            self.ledger = Ledger(resources.store, flush_s=config.flush_s)
            self.ledger.start()

    @hookimpl
    async def on_shutdown(self) -> None:
        if self.ledger is not None:
            await self.ledger.stop()
        if self._lines is not None:
            await asyncio.to_thread(self._lines.close)

    @hookimpl
    async def on_request(self, exchange: Exchange) -> ApiResponse | None:
        ask_stream_usage(exchange)
        return None

    @hookimpl
    async def on_response(self, exchange: Exchange) -> None:
        response = exchange.response
        assert response is not None
        if response.stream is not None:
            exchange.stash[TALLY] = StreamTally()
        elif self.config.header and response.status < 400:
            cost = self._cost_before_sending(exchange, response)
            if cost is not None:
                response.headers["x-chaperone-cost"] = f"{cost:.9f}"

    @hookimpl
    def observe_bytes(self, exchange: Exchange, data: bytes) -> None:
        tally = exchange.stash.get(TALLY)
        if tally is None:
            tally = exchange.stash[TALLY] = StreamTally()
        tally.blocks.append(data)

    @hookimpl
    async def on_complete(self, exchange: Exchange) -> None:
        record = await self._account(exchange)
        exchange.cost_usd = record["cost_usd"]
        if record["saved_usd"]:  # [console] what the cache hit saved, for the request log's rollups
            exchange.stash[SAVED_USD] = record["saved_usd"]
        exchange.verdicts[self.name] = "priced" if record["priced_as"] is not None else "unpriced"
        if self._meter is not None:
            self._meter.write(record)
        if self._lines is not None:
            self._lines.write(record)
        if self.ledger is not None:
            self.ledger.add(record["day"], record["key"], record["model"], _amounts(record))
            if self.config.flush_s == 0:
                await self.ledger.flush()

    # ---- accounting --------------------------------------------------------------------------------

    def _cost_before_sending(self, exchange: Exchange, response: ApiResponse) -> float | None:
        sub_cost = account.subcall_cost(self._book, exchange)[0] if exchange.subcalls else 0.0
        if exchange.verdicts.get("cache") == "hit":
            return sub_cost
        if response.source != "upstream":  # another step answered: no model ran (on_complete counts 0 too)
            return None
        body = response.peek()  # parsed once for every reader (the handler reads it too)
        if body is None:
            return None
        usage, model = fast_usage(body.get("usage")), body.get("model")
        if usage is None:
            return None
        names = account.price_names(exchange, model if isinstance(model, str) else None)
        found = self._book.find(names, exchange.policy.prices)
        return None if found is None else sub_cost + cost_usd(found[1], usage)

    async def _usage(self, exchange: Exchange) -> tuple[Usage, bool, bool]:
        """The request's own usage, whether the proxy counted it, and whether its stream was cut short."""
        response = exchange.response
        if response is None or response.status >= 400 or response.source not in ("upstream", "cache"):
            return Usage(), False, False  # nothing reached an upstream model (or it refused)
        if response.stream is not None:
            tally = exchange.stash.get(TALLY) or StreamTally()
            partial = exchange.error is not None
            endpoint = exchange.request.endpoint
            if endpoint not in _SEEN_USAGE_ENDPOINTS or exchange.usage is None:
                tally.read(endpoint)  # chat's usage is in exchange.usage already (the chain or the handler read it)
            usage = tally.usage if tally.final else exchange.usage
            if usage is not None:
                return usage, False, partial
            if len(tally.blocks) > _READ_INLINE_BLOCKS:  # a long stream: parse it off the event loop
                await asyncio.to_thread(tally.read, endpoint, whole=True)
            else:
                tally.read(endpoint, whole=True)
            counted = await _count(exchange, tally.texts)
            if tally.usage is not None and tally.usage.prompt_tokens:  # Anthropic's message_start: exact input
                counted = Usage(
                    tally.usage.prompt_tokens, counted.completion_tokens,
                    tally.usage.prompt_tokens + counted.completion_tokens, tally.usage.cached_tokens,
                )  # fmt: skip
            return counted, True, partial
        usage = exchange.usage
        if usage is None:
            body = account.answer_body(exchange)  # parsed once, shared with the handler and other plugins
            usage = fast_usage(body.get("usage")) if body else None
        if usage is not None:
            return usage, False, False
        return await _count(exchange, account.answer_texts(exchange)), True, False

    async def _account(self, exchange: Exchange) -> dict[str, Any]:
        usage, estimated, partial = await self._usage(exchange)
        if estimated:
            exchange.usage = usage
        hit = exchange.verdicts.get("cache") == "hit"
        tally = exchange.stash.get(TALLY)
        answered_by = exchange.response_model or (tally.model if tally is not None else None)
        own_cost, priced_as = account.priced(self._book, exchange, usage, answered_by)
        sub_cost, sub_priced = 0.0, True
        billed = Usage() if hit else usage
        if exchange.subcalls:
            sub_cost, sub_usage, sub_priced = account.subcall_cost(self._book, exchange)
            billed = dataclasses.replace(billed)
            account.add(billed, sub_usage)
        saved = own_cost if hit else None
        if hit:
            own_cost, priced_as = 0.0, priced_as or "cache"
        total = None if own_cost is None and not exchange.subcalls else (own_cost or 0.0) + sub_cost
        now = self.clock()
        attempts = exchange.attempts
        return {
            "time": now,  # epoch seconds; the JSON-lines sink writes it as ISO 8601
            "day": self._day(now),
            "request_id": exchange.request_id,
            "key": exchange.caller.name or OPEN_KEY,
            "key_id": exchange.caller.key_id,
            "model": exchange.request.model,
            "upstream_model": answered_by or exchange.route.upstream_model,
            "backend": attempts[-1].backend if attempts else exchange.route.backend,
            "endpoint": exchange.request.endpoint,
            "stream": exchange.request.stream,
            "status": _status(exchange),
            "prompt_tokens": billed.prompt_tokens,
            "cached_tokens": billed.cached_tokens,
            "completion_tokens": billed.completion_tokens,
            "reasoning_tokens": billed.reasoning_tokens,
            "cost_usd": total,
            "priced_as": priced_as if own_cost is not None and sub_priced else None,
            "estimated": estimated,
            "partial": partial,
            "cache": exchange.verdicts.get("cache"),
            "saved_usd": saved,
            "subcalls": len(exchange.subcalls),
            "subcall_cost_usd": sub_cost if exchange.subcalls else None,
        }


async def _count(exchange: Exchange, texts: list[str]) -> Usage:
    """Count with tiktoken off the event loop (a long prompt, or the first use of an encoding, takes ms to s)."""
    return await asyncio.to_thread(account.count_usage, exchange, texts)


def _status(exchange: Exchange) -> int:
    error = exchange.error
    if isinstance(error, ChaperoneError):
        return error.http_status
    if isinstance(error, asyncio.CancelledError):
        return 499  # the client went away
    if error is not None:
        return 500
    return exchange.response.status if exchange.response is not None else 500


def _amounts(record: dict[str, Any]) -> dict[str, int]:
    cost = record["cost_usd"]
    return {
        "requests": 1,
        "cost_nusd": round(cost * NANO) if cost else 0,
        "prompt_tokens": record["prompt_tokens"],
        "cached_tokens": record["cached_tokens"],
        "completion_tokens": record["completion_tokens"],
        "reasoning_tokens": record["reasoning_tokens"],
        "estimated": int(record["estimated"]),
        "unpriced": int(record["priced_as"] is None),
        "errors": int(record["status"] >= 400),
        "cache_hits": int(record["cache"] == "hit"),
        "saved_nusd": round(record["saved_usd"] * NANO) if record["saved_usd"] else 0,
    }


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    register(Cost)
