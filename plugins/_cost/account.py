"""One request's accounting: which usage to trust, counting tokens when the upstream gave none, the price.

Usage comes from the upstream whenever it reported one (whole answers: the body's ``usage``; streams:
the usage chunk, a Responses ``response.completed`` event, Anthropic ``message_start`` +
``message_delta``). Otherwise, and for streams cut short (client gone, upstream broke), the proxy counts
with ``proxy.tokens``: the prompt the upstream was sent plus the text deltas that went out, and labels
the record ``estimated``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from proxy import sse, tokens
from proxy.exchange import Exchange, Usage
from proxy.pricing import Price, cost_usd, price_of
from proxy.textview import chunk_texts, request_texts, response_texts


@dataclass(slots=True)
class StreamTally:
    """What a stream showed the cost plugin: its bytes as they went out, read only when needed.

    ``blocks`` keeps each block the client got (``observe_bytes``: no parsing while the stream runs).
    ``read`` parses the ends of the stream, where the usage and the model are (Anthropic's input count
    in ``message_start``, the output in the last ``message_delta``), and all of it only when the usage is
    missing, for the text deltas that went out (``texts``).
    """

    endpoint: str = "chat"
    blocks: list[bytes] = field(default_factory=list)
    chunks: list[dict[str, Any]] = field(default_factory=list)
    usage: Usage | None = None
    raw_usage: dict[str, Any] | None = None  # Anthropic: message_start's usage, updated by message_delta
    final: bool = False  # the usage came from the stream's last word (not only Anthropic's message_start)
    model: str | None = None  # the model the upstream named in its first chunk

    def read(self, endpoint: str, *, whole: bool = False) -> None:
        """Parse the blocks (only the first and the last two unless ``whole``) into ``see``."""
        self.chunks, self.usage, self.raw_usage, self.final, self.model = [], None, None, False, None
        blocks = self.blocks if whole or len(self.blocks) <= 3 else [self.blocks[0], *self.blocks[-2:]]
        for block in blocks:
            for event in sse.split_events(block):
                chunk = sse.decode_data(event)
                if chunk is not None:
                    self.see(endpoint, chunk)

    def see(self, endpoint: str, chunk: dict[str, Any]) -> None:
        if self.model is None:
            self.model = _chunk_model(chunk)
        self.endpoint = endpoint
        if endpoint in ("chat", "completions"):
            if chunk.get("choices"):  # not the usage-only chunk
                self.chunks.append(chunk)
            usage = chunk.get("usage")
            if isinstance(usage, dict):
                self.usage = Usage.from_openai(usage) or self.usage
                self.final = self.usage is not None
            return
        self.chunks.append(chunk)
        if endpoint == "responses":
            response = chunk.get("response")
            if isinstance(response, dict) and isinstance(response.get("usage"), dict):
                self.usage = Usage.from_openai(response["usage"]) or self.usage
                self.final = self.usage is not None
        elif endpoint == "messages":
            message = chunk.get("message")
            found = message.get("usage") if isinstance(message, dict) else chunk.get("usage")
            if isinstance(found, dict):
                self.raw_usage = {**(self.raw_usage or {}), **{k: v for k, v in found.items() if v is not None}}
                self.usage = Usage.from_openai(self.raw_usage) or self.usage
                self.final = self.final or chunk.get("type") == "message_delta"

    @property
    def texts(self) -> list[str]:
        """The text deltas that went out (``*.done`` events and final responses repeat the text: skipped)."""
        endpoint = self.endpoint
        if endpoint in ("chat", "completions"):
            return [ref.text for chunk in self.chunks for ref in chunk_texts(endpoint, chunk)]
        return [ref.text for chunk in self.chunks for ref in chunk_texts(endpoint, chunk) if ref.stream_key is not None]


def _chunk_model(chunk: dict[str, Any]) -> str | None:
    holder = chunk.get("message") or chunk.get("response") or chunk  # Messages' message_start, Responses' created
    model = holder.get("model") if isinstance(holder, dict) else None
    return model if isinstance(model, str) else None


def answer_body(exchange: Exchange) -> dict[str, Any] | None:
    response = exchange.response
    if response is None or response.stream is not None:
        return None
    return response.peek()


def count_usage(exchange: Exchange, completion_texts: list[str]) -> Usage:
    """Tokens counted by the proxy: the request as sent upstream, and ``completion_texts``. Blocking (tiktoken)."""
    request = exchange.request
    model = exchange.route.upstream_model or request.model
    if request.endpoint == "chat":
        prompt = tokens.count_chat({**request.body, "model": model})
    else:
        prompt = sum(tokens.count(ref.text, model) for ref in request_texts(request))
    completion = tokens.count("".join(completion_texts), model) if completion_texts else 0
    return Usage(prompt, completion, prompt + completion)


def answer_texts(exchange: Exchange) -> list[str]:
    body = answer_body(exchange)
    return [ref.text for ref in response_texts(exchange.request.endpoint, body)] if body else []


def price_names(exchange: Exchange, answered_by: str | None) -> tuple[str | None, ...]:
    """Names to price a request by, most specific first: the upstream's, the route's, the client's."""
    return (answered_by, exchange.route.upstream_model, exchange.request.model)


class PriceBook:
    """``price_of`` remembered per tuple of names, for one policy's ``prices`` (forgotten when they change)."""

    __slots__ = ("_memo", "_prices")

    def __init__(self) -> None:
        self._prices: Mapping[str, Price] | None = None
        self._memo: dict[tuple[str | None, ...], tuple[str, Price] | None] = {}

    def find(self, names: tuple[str | None, ...], prices: Mapping[str, Price]) -> tuple[str, Price] | None:
        if prices is not self._prices:
            self._prices, self._memo = prices, {}
        try:
            return self._memo[names]
        except KeyError:
            pass
        if len(self._memo) >= 4096:  # client-chosen names: keep the memo bounded
            self._memo.clear()
        found = self._memo[names] = price_of(names, prices)
        return found


def priced(
    book: PriceBook, exchange: Exchange, usage: Usage, answered_by: str | None
) -> tuple[float | None, str | None]:
    """The cost of ``usage`` for this request's model, and the price entry used (None, None: unpriced)."""
    found = book.find(price_names(exchange, answered_by), exchange.policy.prices)
    if found is None:
        return None, None
    return cost_usd(found[1], usage), found[0]


def subcall_cost(book: PriceBook, exchange: Exchange) -> tuple[float, Usage, bool]:
    """Sub-calls' cost and summed usage; False when one of them used a model without a price."""
    total = 0.0
    summed = Usage()
    complete = True
    for record in exchange.subcalls:
        if record.usage is None:
            continue
        add(summed, record.usage)
        route = exchange.policy.routes.get(record.model)
        found = book.find((route.upstream_model if route else None, record.model), exchange.policy.prices)
        if found is None:
            complete = False
        else:
            total += cost_usd(found[1], record.usage)
    return total, summed, complete


def add(into: Usage, usage: Usage) -> None:
    into.prompt_tokens += usage.prompt_tokens
    into.completion_tokens += usage.completion_tokens
    into.total_tokens += usage.total_tokens
    into.cached_tokens += usage.cached_tokens
    into.reasoning_tokens += usage.reasoning_tokens
