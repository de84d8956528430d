"""The state store contract: the ``Store`` protocol, its errors, and the helpers both backends share.

What lives here must outlive a request: cache entries, budget and rate-limit counters, circuit-breaker
state. Every method is async; keys are ``str`` (the backend adds its prefix), values are ``bytes``.

A key holds a *value* (``get``/``set``/``add``/``delete``), a *counter* (``incr``/``counter``, and
``delete`` for a counter without a window) or a *set* of strings (``set_add``/``set_remove``/``set_members``;
a set is gone once its last member is removed, and sets never expire). Sets are indexes, for listing what
was stored under other keys (for example the ids of virtual keys); each change is one atomic step, so two
replicas adding members at once both win. Using a key as another kind raises ``StoreError``.

Time comes from the clock given to ``open_store``, not from the backend: a value set with ``ttl_s``
is gone once ``clock() >= set time + ttl_s``, and a windowed counter counts in the window
``floor(clock() / window_s)``. The backend's own expiry is also set, so dead entries are collected,
but it only ever removes what the clock already considers gone (when the clock is ``time.time``).
"""

import math
from collections.abc import Callable, Sequence
from typing import Protocol, runtime_checkable

__all__ = [
    "Clock",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "check_amount",
    "check_positive",
    "expires_at",
    "is_live",
    "pack_value",
    "unpack_value",
    "window_slot",
]

Clock = Callable[[], float]
"""Seconds since the epoch; ``time.time`` in production, a fake in tests."""

WINDOW_GRACE_S = 1.0
"""Extra backend expiry for a window's counter, so a replica whose clock lags slightly still finds it.

The window index in the key decides which window counts; the expiry only collects old windows.
"""


class StoreError(Exception):
    """The store could not do what was asked (for example, ``incr`` on a key that holds a value)."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached or used; the message names the redis URL or diskcache path."""


@runtime_checkable
class Store(Protocol):
    """Async key-value store with atomic counters, shared by plugins and, with Redis, by replicas."""

    async def get(self, key: str) -> bytes | None:
        """Return the value, or None when the key is absent or its TTL has passed."""

    async def set(self, key: str, value: bytes, *, ttl_s: float | None = None) -> None:
        """Store ``value``, replacing any value and TTL. ``ttl_s`` (> 0) makes it expire; None keeps it."""

    async def set_many(self, items: Sequence[tuple[str, bytes]], *, ttl_s: float | None = None) -> None:
        """``set`` each ``(key, value)``, with one TTL, in one go (diskcache: one transaction; Redis: one
        pipeline round trip). Not atomic on Redis: after a failure some may be stored."""

    async def add(self, key: str, value: bytes, *, ttl_s: float | None = None) -> bool:
        """Store ``value`` only if the key is absent (or expired), atomically. True if this call stored it.

        Use it for locks and de-duplication: exactly one of several concurrent callers gets True.
        """

    async def delete(self, key: str) -> bool:
        """Remove a value or an unwindowed counter. True if something live was removed."""

    async def delete_many(self, keys: Sequence[str]) -> None:
        """``delete`` each key, in one go (diskcache: one transaction; Redis: one command); absent keys are
        skipped. For bulk removals (cache eviction), where one write each would cost several times more."""

    async def incr(self, key: str, amount: float = 1, *, window_s: float | None = None) -> float:
        """Add ``amount`` atomically (across coroutines, processes and replicas) and return the new total.

        Without ``window_s`` the counter lives until deleted. With ``window_s`` (> 0) it is a fixed-window
        counter: windows are aligned to the clock (``floor(now / window_s)``), the call returns the count
        for the current window, and each window's count expires after the window ends.
        """

    async def counter(self, key: str, *, window_s: float | None = None) -> float:
        """Read a counter (the current window's, with ``window_s``) without changing it; 0 when absent."""

    async def set_add(self, key: str, member: str) -> bool:
        """Add ``member`` to the set at ``key`` atomically. True if it was not there before."""

    async def set_remove(self, key: str, member: str) -> bool:
        """Remove ``member`` from the set at ``key`` atomically. True if it was there."""

    async def set_members(self, key: str) -> frozenset[str]:
        """The members of the set at ``key``; empty when absent."""

    async def ping(self) -> None:
        """Return if the backend is usable, else raise ``StoreUnavailable`` (used by ``/readyz``)."""

    async def close(self) -> None:
        """Release connections and threads. Idempotent; later calls raise ``StoreUnavailable``."""


def check_amount(amount: float) -> None:
    """Reject a counter increment that is not a finite number (NaN or infinity would poison the total)."""
    if not math.isfinite(amount):
        raise ValueError(f"amount must be a finite number, got {amount!r}")


def check_positive(name: str, value: float | None) -> None:
    """Reject a TTL or window that is not a finite number above zero (None means "not given")."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number of seconds > 0, got {value!r}")


def expires_at(now: float, ttl_s: float | None) -> float | None:
    """The clock time at which a value set now with ``ttl_s`` stops being live."""
    return None if ttl_s is None else now + ttl_s


def pack_value(value: bytes, expires: float | None) -> bytes:
    """Frame a value with its expiry (milliseconds on the store's clock) as ``b"<ms>|<value>"``.

    A value without expiry is ``b"|<value>"``. Counters are stored as bare numbers, which never contain
    ``|``, so the two kinds of key can always be told apart.
    """
    head = b"" if expires is None else str(math.ceil(expires * 1000)).encode()
    return head + b"|" + value


def unpack_value(key: str, raw: bytes) -> tuple[bytes, float | None]:
    """Split a framed value into ``(value, expiry in seconds or None)``; StoreError if it is a counter."""
    head, sep, value = raw.partition(b"|")
    if not sep or not (head == b"" or head.isdigit()):
        raise StoreError(f"key {key!r} holds a counter, not a value")
    return value, (None if head == b"" else int(head) / 1000)


def is_live(expires: float | None, now: float) -> bool:
    """True while a value with this expiry has not expired at ``now``."""
    return expires is None or now < expires


def window_slot(key: str, window_s: float, now: float) -> tuple[str, float]:
    """The key of the window containing ``now``, and how long the backend should keep it (seconds).

    The window size is part of the key, so one name may be counted in windows of several sizes.
    """
    index = math.floor(now / window_s)
    remaining = (index + 1) * window_s - now
    return f"{key}@{float(window_s)!r}#{index}", remaining + WINDOW_GRACE_S
