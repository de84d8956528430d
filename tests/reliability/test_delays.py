"""Backoff with full jitter, Retry-After (seconds and HTTP dates) and OpenAI's x-ratelimit-reset-* durations."""

from __future__ import annotations

import random

import pytest

from plugins._retry import delays


def test_full_jitter_stays_under_the_exponential_and_the_cap() -> None:
    rng = random.Random(7)
    for attempt in range(12):
        samples = [delays.backoff(attempt, 0.1, 2.0, rng) for _ in range(200)]
        ceiling = min(2.0, 0.1 * 2**attempt)
        assert all(0 <= s <= ceiling for s in samples)
        assert max(samples) > ceiling * 0.8  # jitter spans the range, not a constant
    assert max(delays.backoff(60, 0.1, 2.0, rng) for _ in range(50)) <= 2.0  # no overflow for huge attempts


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("3", 3.0), (" 0.5 ", 0.5), ("0", 0.0), ("-4", 0.0), ("soon", None), ("", None)],
)
def test_retry_after_in_seconds(value: str, seconds: float | None) -> None:
    assert delays.parse_retry_after(value) == seconds


def test_retry_after_as_an_http_date() -> None:
    now = 1_764_633_600.0  # Tue, 02 Dec 2025 00:00:00 GMT
    assert delays.parse_retry_after("Tue, 02 Dec 2025 00:00:07 GMT", lambda: now) == pytest.approx(7.0)
    assert delays.parse_retry_after("Mon, 01 Dec 2025 23:59:00 GMT", lambda: now) == 0.0  # in the past


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1s", 1.0), ("6m0s", 360.0), ("250ms", 0.25), ("1h2m3.5s", 3723.5), ("2", 2.0), ("1x", None), ("s", None)],
)
def test_openai_reset_durations(value: str, seconds: float | None) -> None:
    assert delays.parse_duration(value) == seconds


def test_hint_prefers_retry_after_then_the_exhausted_limit() -> None:
    assert delays.hint({"retry-after": "2", "x-ratelimit-reset-requests": "9s"}) == 2.0
    exhausted_tokens = {
        "x-ratelimit-reset-requests": "20s",
        "x-ratelimit-remaining-requests": "10",
        "x-ratelimit-reset-tokens": "1.5s",
        "x-ratelimit-remaining-tokens": "0",
    }
    assert delays.hint(exhausted_tokens) == 1.5
    assert delays.hint({"x-ratelimit-reset-requests": "3s", "x-ratelimit-reset-tokens": "1s"}) == 3.0
    assert delays.hint({"retry-after": "garbage"}) is None
    assert delays.hint({}) is None
