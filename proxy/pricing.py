"""Model prices and what a request cost: one table for the ``cost`` plugin and money budgets alike.

Prices are USD per million tokens: input, cached input (prompt tokens the upstream served from its
prompt cache), output, and reasoning (billed as output by OpenAI; listed apart so a policy can price
them otherwise). The built-in table covers common OpenAI and Anthropic models as their vendors list
them (``SOURCE``, ``AS_OF``): prices change, so a policy's ``prices:`` section overrides or adds
entries, and a self-hosted model is priced at what its GPU hour costs you (or 0).

A model name matches its own entry, else the longest entry it extends with ``-`` or ``:`` (dated
snapshots: ``gpt-4o-2024-08-06`` → ``gpt-4o``, never ``gpt-4o-mini`` → ``gpt-4o``), after dropping a
provider prefix (``openai/gpt-4o``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from proxy.exchange import Usage

__all__ = ["AS_OF", "PRICES", "SOURCE", "Price", "PriceConfig", "cost_usd", "price_for"]

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
    "gpt-4o": Price(2.50, 10.00, 1.25),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075),
    "gpt-4-turbo": Price(10.00, 30.00),
    "gpt-4": Price(30.00, 60.00),
    "gpt-3.5-turbo": Price(0.50, 1.50),
    "o1": Price(15.00, 60.00, 7.50),
    "o1-mini": Price(1.10, 4.40, 0.55),
    "o3": Price(2.00, 8.00, 0.50),
    "o3-mini": Price(1.10, 4.40, 0.55),
    "o4-mini": Price(1.10, 4.40, 0.275),
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
}


def price_for(model: str, overrides: Mapping[str, Price] | None = None) -> Price | None:
    """The price of ``model``: the policy's entry, else the built-in one; None when neither knows it."""
    name = model.rsplit("/", 1)[-1]
    for table in (overrides or {}, PRICES):
        if name in table:
            return table[name]
        if model in table:
            return table[model]
    best: str | None = None
    for table in (overrides or {}, PRICES):
        for entry in table:
            if name.startswith(entry) and name[len(entry) : len(entry) + 1] in ("-", ":", "@"):
                if best is None or len(entry) > len(best):
                    best = entry
        if best is not None:
            return table[best]
    return None


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
