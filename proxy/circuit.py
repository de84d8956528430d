"""Circuit breakers: stop calling a backend that keeps failing, probe it again after a cool-down.

One ``Breaker`` per backend and process. It counts this process's attempts (consecutive failures,
consecutive timeouts, the failure rate over a window of buckets) and trips on any of them. The
*state* is shared through the policy's store, so every replica (and worker) honours a circuit that
one of them opened:

    circuit:{backend}          value, JSON {"until": epoch, "cooldown": s}, expires with the cool-down
    circuit:{backend}:probe    value, taken with ``add`` by the one replica that probes after the cool-down

A replica reads the shared value at most every ``sync_s`` (so a closed circuit costs no store call
per request) and writes it only when it trips one or a probe ends. Cool-downs are on the store's clock
(wall time, injectable); per-attempt counting uses ``time.monotonic``.

closed → open (trip) → half-open once the cool-down is over: one probe attempt is let through
(others still fail over at once); its success closes the circuit everywhere, its failure opens it
again for twice the cool-down (up to ``max_cooldown_s``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from proxy.errors import UpstreamError, UpstreamStatus, UpstreamTimeout, UpstreamUnavailable
from proxy.policyfile import CircuitConfig
from proxy.store import Store, StoreError

log = logging.getLogger(__name__)
_BUCKETS = 10


class CircuitOpen(UpstreamUnavailable):
    """The backend's circuit is open: the attempt was not made (fall back, or answer 503 at once)."""

    code = "circuit_open"


def is_failure(exc: BaseException) -> bool:
    """What counts against a backend: no connection, a timeout, a dropped connection, a 5xx (not a 4xx)."""
    if isinstance(exc, UpstreamStatus):
        return exc.upstream_status >= 500
    return isinstance(exc, UpstreamError) and not isinstance(exc, CircuitOpen)


class Breaker:
    """The circuit of one backend in this process, mirrored to the store."""

    def __init__(self, backend: str, config: CircuitConfig, store: Store, clock: Callable[[], float]) -> None:
        self.backend = backend
        self.config = config
        self.store = store
        self.clock = clock  # wall time (the store's clock): cool-downs are compared across replicas
        self.key = f"circuit:{backend}"
        self.state = "closed"
        self.until = 0.0  # while open: when a probe may go
        self.cooldown = config.cooldown_s
        self.consecutive = 0
        self.timeouts = 0
        self.probing = False
        self.opened = 0  # how many times this process saw it open
        self._synced = -math.inf
        self._syncing = False
        self._step = config.window_s / _BUCKETS
        self._slot = 0
        self._total = [0] * _BUCKETS
        self._failed = [0] * _BUCKETS

    # ---- admission ------------------------------------------------------------------------

    async def admit(self) -> bool:
        """Whether an attempt may go now (a probe, when the cool-down is over); False: fail over."""
        config = self.config
        if config.sync_s == 0 or time.monotonic() - self._synced >= config.sync_s:
            await self._sync()
        if self.state == "closed":
            return True
        if self.probing or self.clock() < self.until:
            return False
        try:  # one probe across replicas
            taken = await self.store.add(self.key + ":probe", b"1", ttl_s=max(1.0, self.cooldown))
        except StoreError:
            taken = True  # the store is down: probe locally rather than stay open for ever
        if not taken:
            return False
        self.state = "half_open"
        self.probing = True
        return True

    async def _sync(self) -> None:
        if self._syncing:
            return
        self._syncing = True
        self._synced = time.monotonic()
        try:
            raw = await self.store.get(self.key)
        except StoreError as exc:
            log.warning("circuit %s: store not readable, keeping the local state: %s", self.backend, exc)
            return
        finally:
            self._syncing = False
        if raw is None:
            if self.state == "open" and not self.probing and self.clock() >= self.until:
                self.state = "closed"  # another replica's probe closed it
                self.cooldown = self.config.cooldown_s
            return
        shared = _decode(raw)
        if shared is None or self.probing:
            return
        until, cooldown = shared
        if until > self.clock() and (self.state == "closed" or until > self.until):
            if self.state == "closed":
                self.opened += 1
                log.warning("circuit %s: opened by another replica until %.0f", self.backend, until)
            self.state, self.until, self.cooldown = "open", until, cooldown

    # ---- outcomes ---------------------------------------------------------------------------

    async def success(self) -> None:
        self.consecutive = self.timeouts = 0
        self._count(False)
        if self.probing or self.state != "closed":
            self.probing = False
            self.state = "closed"
            self.cooldown = self.config.cooldown_s
            log.warning("circuit %s: closed (probe succeeded)", self.backend)
            await self._write(None)

    async def failure(self, exc: BaseException) -> None:
        """Count ``exc`` (when it is a backend failure, see ``is_failure``); may open the circuit."""
        if not is_failure(exc):
            if self.probing:  # a 4xx means the backend answers: the probe succeeded
                await self.success()
            return
        self.consecutive += 1
        self.timeouts = self.timeouts + 1 if isinstance(exc, UpstreamTimeout) else 0
        self._count(True)
        if self.probing:
            self.cooldown = min(self.cooldown * 2, self.config.max_cooldown_s)
            await self._open(f"probe failed ({getattr(exc, 'code', None) or type(exc).__name__})")
        elif self.state == "closed" and (reason := self._trip_reason()):
            await self._open(reason)

    def release(self) -> None:
        """The attempt ended without an outcome (cancelled): let another probe go."""
        if self.probing:
            self.probing = False
            self.state = "open"

    def _trip_reason(self) -> str | None:
        config = self.config
        if self.consecutive >= config.failures:
            return f"{self.consecutive} consecutive failures"
        if self.timeouts >= config.timeouts:
            return f"{self.timeouts} consecutive timeouts"
        if config.failure_rate is not None:
            total, failed = sum(self._total), sum(self._failed)
            if total >= config.min_requests and failed / total >= config.failure_rate:
                return f"{failed} of {total} attempts failed in {config.window_s:g} s"
        return None

    async def _open(self, reason: str) -> None:
        self.probing = False
        self.state = "open"
        self.until = self.clock() + self.cooldown
        self.opened += 1
        self.consecutive = self.timeouts = 0
        log.warning("circuit %s: open for %.1f s: %s", self.backend, self.cooldown, reason)
        await self._write((self.until, self.cooldown))

    async def _write(self, shared: tuple[float, float] | None) -> None:
        try:
            if shared is None:
                await self.store.delete(self.key)
            else:
                until, cooldown = shared
                payload = orjson.dumps({"until": until, "cooldown": cooldown})
                await self.store.set(self.key, payload, ttl_s=max(1.0, cooldown + self.config.max_cooldown_s))
            await self.store.delete(self.key + ":probe")
        except StoreError as exc:
            log.warning("circuit %s: state not shared (store error): %s", self.backend, exc)

    def _count(self, failed: bool) -> None:
        slot = int(time.monotonic() / self._step)
        if slot != self._slot:
            for old in range(max(self._slot + 1, slot - _BUCKETS + 1), slot + 1):
                self._total[old % _BUCKETS] = self._failed[old % _BUCKETS] = 0
            self._slot = slot
        index = slot % _BUCKETS
        self._total[index] += 1
        if failed:
            self._failed[index] += 1

    def status(self) -> dict[str, Any]:
        """The state for ``GET /chaperone/backends`` and ``/readyz``."""
        out: dict[str, Any] = {
            "state": self.state,
            "consecutive_failures": self.consecutive,
            "window": {"attempts": sum(self._total), "failures": sum(self._failed), "seconds": self.config.window_s},
            "opened": self.opened,
        }
        if self.state != "closed":
            out["retry_at"] = self.until
            out["cooldown_s"] = self.cooldown
        return out


def _decode(raw: bytes) -> tuple[float, float] | None:
    try:
        data = orjson.loads(raw)
        return float(data["until"]), float(data["cooldown"])
    except (ValueError, TypeError, KeyError):
        return None


def wanted(backends: Mapping[str, CircuitConfig], fallen_from: Iterable[str]) -> dict[str, CircuitConfig]:
    """The backends that get a breaker: ``enabled: true``, or ``auto`` and some route falls back from them."""
    sources = set(fallen_from)
    return {
        name: config
        for name, config in backends.items()
        if config.enabled is True or (config.enabled == "auto" and name in sources)
    }


class Circuits:
    """The breakers of one active policy, by backend name (backends without one are absent)."""

    def __init__(
        self, configs: Mapping[str, CircuitConfig], store: Store, clock: Callable[[], float] = time.time
    ) -> None:
        self.breakers = {name: Breaker(name, config, store, clock) for name, config in configs.items()}

    def get(self, backend: str) -> Breaker | None:
        return self.breakers.get(backend)

    def status(self) -> dict[str, dict[str, Any]]:
        return {name: breaker.status() for name, breaker in self.breakers.items()}
