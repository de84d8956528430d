"""Prices: the right entry for a dated or prefixed model name, cached and reasoning tokens at their own rates."""

from __future__ import annotations

import pytest

from proxy.exchange import Usage
from proxy.pricing import Price, cost_usd, price_for


def test_names_match_their_entry_and_dated_snapshots_but_never_a_longer_sibling() -> None:
    assert price_for("gpt-4o") == Price(2.50, 10.00, 1.25)
    assert price_for("gpt-4o-2024-08-06") == price_for("gpt-4o")
    assert price_for("gpt-4o-mini") == Price(0.15, 0.60, 0.075)
    assert price_for("gpt-4o-mini-2024-07-18") == price_for("gpt-4o-mini")
    assert price_for("openai/gpt-4.1-nano") == price_for("gpt-4.1-nano")
    assert price_for("meta-llama/Llama-3.1-8B-Instruct") is None
    assert price_for("gpt-4oo") is None


def test_policy_entries_win_over_the_built_in_table() -> None:
    mine = {"gpt-4o": Price(1.0, 2.0), "local-llama": Price(0.0, 0.0)}
    assert price_for("gpt-4o-2024-11-20", mine) == Price(1.0, 2.0)
    assert price_for("local-llama", mine) == Price(0.0, 0.0)


def test_cached_and_reasoning_tokens_are_priced_at_their_rates() -> None:
    price = Price(input=2.0, output=8.0, cached_input=0.5, reasoning=8.0)
    usage = Usage(prompt_tokens=1_000_000, completion_tokens=500_000, total_tokens=1_500_000,
                  cached_tokens=400_000, reasoning_tokens=100_000)  # fmt: skip
    assert cost_usd(price, usage) == pytest.approx(0.6 * 2.0 + 0.4 * 0.5 + 0.5 * 8.0)


def test_usage_reads_every_apis_details() -> None:
    chat = Usage.from_openai({"prompt_tokens": 100, "completion_tokens": 50, "total_tokens": 150,
                              "prompt_tokens_details": {"cached_tokens": 60},
                              "completion_tokens_details": {"reasoning_tokens": 20}})  # fmt: skip
    assert chat == Usage(100, 50, 150, 60, 20)
    responses = Usage.from_openai({"input_tokens": 100, "output_tokens": 50, "total_tokens": 150,
                                   "input_tokens_details": {"cached_tokens": 10},
                                   "output_tokens_details": {"reasoning_tokens": 5}})  # fmt: skip
    assert responses == Usage(100, 50, 150, 10, 5)
    anthropic = Usage.from_openai({"input_tokens": 40, "output_tokens": 7, "cache_read_input_tokens": 60})
    assert anthropic == Usage(100, 7, 107, 60, 0)


def test_usage_with_wrong_types_is_no_usage_not_a_crash() -> None:
    assert Usage.from_openai({"prompt_tokens": "10", "completion_tokens": 5}) is None
    assert Usage.from_openai({"input_tokens": "10", "output_tokens": 5, "cache_read_input_tokens": 3}) is None
    assert Usage.from_openai({"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": "3"}) is None
