"""Model prices and what a request cost: one table for the ``cost`` plugin and money budgets alike.

Prices are USD per million tokens: input, cached input (prompt tokens the upstream served from its
prompt cache), output, and reasoning (billed as output by OpenAI; listed apart so a policy can price
them otherwise). The built-in table covers common OpenAI and Anthropic models as their vendors list
them (``SOURCE``, ``AS_OF``): prices change, so a policy's ``prices:`` section overrides or adds
entries, and a self-hosted model is priced at what its GPU hour costs you (or 0).

A model name matches its own entry, else the longest entry it extends with ``-`` or ``:`` (dated
snapshots: ``gpt-4o-2024-08-06`` → ``gpt-4o``, never ``gpt-4o-mini`` → ``gpt-4o``), after dropping a
provider prefix (``openai/gpt-4o``).

Usage on streams: a streamed chat or completions answer carries usage only when the request says
``stream_options.include_usage``. ``ask_stream_usage`` adds it (once per request, whichever of the
``cost`` and ``budget`` plugins comes first) and remembers whether the client asked;
``take_stream_usage`` records a chunk's usage into ``exchange.usage`` and, when the client did not
ask, drops the extra usage chunk (or the ``usage`` field riding on a content chunk) before the client
sees it. Both plugins may call both: the first to act wins, the other sees it done.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from proxy.exchange import Exchange, StashKey, Usage

__all__ = [
    "AS_OF",
    "CLIENT_ASKED_USAGE",
    "PRICES",
    "SOURCE",
    "Price",
    "PriceConfig",
    "ask_stream_usage",
    "cost_usd",
    "price_for",
    "price_of",
    "take_stream_usage",
]

SOURCE = "openai.com/api/pricing and anthropic.com/pricing (standard tier, no batch discount)"
AS_OF = "2025-08"


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M tokens."""

    input: float
    output: float
    cached_input: float | None = None  # None: cached tokens cost the input price
    reasoning: float | None = None  # None: reasoning tokens cost the output price


class PriceConfig(BaseModel):
    """A ``prices:`` entry of a policy: USD per 1M tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: float = Field(ge=0, description="Input (prompt) tokens.")
    output: float = Field(ge=0, description="Output (completion) tokens.")
    cached_input: float | None = Field(default=None, ge=0, description="Cached prompt tokens (default: input).")
    reasoning: float | None = Field(default=None, ge=0, description="Reasoning tokens (default: output).")

    def price(self) -> Price:
        return Price(self.input, self.output, self.cached_input, self.reasoning)


PRICES: Mapping[str, Price] = {
    "gpt-5": Price(1.25, 10.00, 0.125),
    "gpt-5-mini": Price(0.25, 2.00, 0.025),
    "gpt-5-nano": Price(0.05, 0.40, 0.005),
    "gpt-4.1": Price(2.00, 8.00, 0.50),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
    "gpt-4.1-nano": Price(0.10, 0.40, 0.025),
    "gpt-5-chat-latest": Price(1.25, 10.00, 0.125),
    "gpt-4.5-preview": Price(75.00, 150.00, 37.50),
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-2024-05-13": Price(5.00, 15.00),
    "chatgpt-4o-latest": Price(5.00, 15.00),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "gpt-3.5-turbo-instruct": Price(1.50, 2.00),
    "davinci-002": Price(2.00, 2.00),
    "babbage-002": Price(0.40, 0.40),
    "o1": Price(15.00, 60.00, 7.50),
    "o1-mini": Price(1.10, 4.40, 0.55),
    "o1-pro": Price(150.00, 600.00),
    "o3-pro": Price(20.00, 80.00),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
    "codex-mini-latest": Price(1.50, 6.00, 0.375),
    "text-embedding-3-small": Price(0.02, 0.0),
    "text-embedding-3-large": Price(0.13, 0.0),
    "text-embedding-ada-002": Price(0.10, 0.0),
    "claude-opus-4-1": Price(15.00, 75.00, 1.50),
    "claude-opus-4": Price(15.00, 75.00, 1.50),
    "claude-sonnet-4-5": Price(3.00, 15.00, 0.30),
    "claude-sonnet-4": Price(3.00, 15.00, 0.30),
    "claude-3-7-sonnet": Price(3.00, 15.00, 0.30),
    "claude-3-5-sonnet": Price(3.00, 15.00, 0.30),
    "claude-haiku-4-5": Price(1.00, 5.00, 0.10),
    "claude-3-5-haiku": Price(0.80, 4.00, 0.08),
    "claude-3-haiku": Price(0.25, 1.25, 0.03),
    "claude-3-opus": Price(15.00, 75.00, 1.50),
}


def price_for(model: str, overrides: Mapping[str, Price] | None = None, *, builtin: bool = True) -> Price | None:
    """The price of ``model``: the policy's entry, else the built-in one; None when neither knows it.

    An exact name wins over a prefix (``gpt-4o`` over ``gpt-4o-2024-08-06``'s family), the policy's over the
    built-in table's; the built-in lookup is memoised per model name (it scans the whole table).
    """
    name = model.rsplit("/", 1)[-1]
    table = overrides or {}
    if name in table:
        return table[name]
    if model in table:
        return table[model]
    exact, family = _builtin_price(model) if builtin else (None, None)
    if exact is not None:
        return exact
    best = _longest_prefix(name, table)
    return table[best] if best is not None else family


@functools.lru_cache(maxsize=4096)
def _builtin_price(model: str) -> tuple[Price | None, Price | None]:
    """The built-in table's exact entry for ``model`` and its longest family prefix (either may be None)."""
    name = model.rsplit("/", 1)[-1]
    exact = PRICES.get(name) or PRICES.get(model)
    best = _longest_prefix(name, PRICES)
    return exact, PRICES[best] if best is not None else None


def _longest_prefix(name: str, table: Mapping[str, Price]) -> str | None:
    best: str | None = None
    for entry in table:
        if name.startswith(entry) and name[len(entry) : len(entry) + 1] in ("-", ":", "@"):
            if best is None or len(entry) > len(best):
                best = entry
    return best


def cost_usd(price: Price, usage: Usage) -> float:
    """What ``usage`` costs at ``price``: cached prompt tokens at the cached rate, reasoning at its own."""
    cached = min(usage.cached_tokens, usage.prompt_tokens)
    reasoning = min(usage.reasoning_tokens, usage.completion_tokens)
    cached_rate = price.input if price.cached_input is None else price.cached_input
    reasoning_rate = price.output if price.reasoning is None else price.reasoning
    total = (
        (usage.prompt_tokens - cached) * price.input
        + cached * cached_rate
        + (usage.completion_tokens - reasoning) * price.output
        + reasoning * reasoning_rate
    )
    return total / 1_000_000


def price_of(names: Sequence[str | None], overrides: Mapping[str, Price] | None = None) -> tuple[str, Price] | None:
    """The first of ``names`` the policy prices, else the first the built-in table prices; with the name used.

    Give the most specific name first (the model the upstream said it ran, then the route's upstream
    model, then the client's name): a policy entry for any of them wins over a built-in one.
    """
    candidates = [name for name in names if name]
    for builtin in (False, True):
        for name in candidates:
            price = price_for(name, overrides if not builtin else None, builtin=builtin)
            if price is not None:
                return name, price
    return None


# ---- usage on streams ------------------------------------------------------------------------------

CLIENT_ASKED_USAGE = StashKey[bool]()
"""Set by ``ask_stream_usage``: whether the client itself asked for usage on its stream."""
_STREAM_USAGE_ENDPOINTS = frozenset({"chat", "completions"})
_ABSENT = object()


def ask_stream_usage(exchange: Exchange) -> None:
    """Make a streamed chat/completions request carry usage (``stream_options.include_usage``); idempotent.

    Call it from ``on_request``. The first call per request decides and records whether the client
    asked; later calls (another plugin) see that record and do nothing.
    """
    request = exchange.request
    if CLIENT_ASKED_USAGE in exchange.stash or request.endpoint not in _STREAM_USAGE_ENDPOINTS or not request.stream:
        return
    options = request.body.get("stream_options")
    asked = isinstance(options, dict) and options.get("include_usage") is True
    exchange.stash[CLIENT_ASKED_USAGE] = asked
    if not asked:
        request.body["stream_options"] = (
            {**options, "include_usage": True} if isinstance(options, dict) else {"include_usage": True}
        )
        request.raw = None  # the body changed: serialise it again upstream


def take_stream_usage(exchange: Exchange, chunk: dict[str, Any]) -> dict[str, Any] | None:
    """Record a chat/completions chunk's usage in ``exchange.usage``; the chunk as the client asked for it.

    Returns None for the extra usage-only chunk when the client did not ask for usage (drop it), the
    chunk without its ``usage`` field when that rode on a content chunk, else the chunk unchanged.
    """
    usage = chunk.get("usage", _ABSENT)
    if usage is _ABSENT:
        return chunk
    if isinstance(usage, dict):
        exchange.usage = Usage.from_openai(usage) or exchange.usage
        model = chunk.get("model")
        if isinstance(model, str) and exchange.response_model is None:
            exchange.response_model = model  # the handler would have read it from this chunk, now dropped
    if exchange.stash.get(CLIENT_ASKED_USAGE, True):
        return chunk
    if not chunk.get("choices"):
        return None
    del chunk["usage"]
    return chunk
