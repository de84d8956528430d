"""How long to wait before the next attempt: exponential backoff with full jitter, or the upstream's own hint.

The hint is ``Retry-After`` (seconds, or an HTTP date) or OpenAI's ``x-ratelimit-reset-requests`` /
``x-ratelimit-reset-tokens`` (durations like ``1s``, ``6m0s``, ``250ms``), taking the reset of each
limit whose ``x-ratelimit-remaining-*`` is 0 (or of every limit named, when none says which).
"""

from __future__ import annotations

import email.utils
import random
import re
import time
from collections.abc import Callable, Mapping

from proxy.errors import UpstreamError

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def backoff(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)] (``attempt`` 0 after the first failure)."""
    return rng.uniform(0.0, min(cap_s, base_s * (2.0 ** min(attempt, 30))))


def parse_retry_after(value: str, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait for a ``Retry-After`` value (delta seconds or an HTTP date); None if it does not parse."""
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - now()
    return max(0.0, seconds) if seconds == seconds else None


def parse_duration(value: str) -> float | None:
    """Seconds in an OpenAI reset duration (``1m30s``, ``20ms``, ``0.5s``, or a bare number of seconds)."""
    text = value.strip().lower()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    parts = _DURATION.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        return None
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def hint(headers: Mapping[str, str], now: Callable[[], float] = time.time) -> float | None:
    """The wait an upstream asked for, in seconds, from its response headers (lower-case names); None if none."""
    retry_after = headers.get("retry-after")
    if retry_after is not None:
        parsed = parse_retry_after(retry_after, now)
        if parsed is not None:
            return parsed
    resets = []
    exhausted = []
    for kind in ("requests", "tokens"):
        reset = headers.get(f"x-ratelimit-reset-{kind}")
        seconds = parse_duration(reset) if reset is not None else None
        if seconds is None:
            continue
        resets.append(seconds)
        if headers.get(f"x-ratelimit-remaining-{kind}", "").strip() == "0":
            exhausted.append(seconds)
    chosen = exhausted or resets
    return max(chosen) if chosen else None


def error_hint(exc: UpstreamError) -> float | None:
    """The upstream's wait hint carried by an error (``UpstreamStatus`` keeps Retry-After and x-ratelimit-*)."""
    return hint(exc.extra_headers) if exc.extra_headers else None
