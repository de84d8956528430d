"""Replicas of one backend (``urls:``): one attempt goes to one replica, picked by a ``Balancer``.

A backend with a single ``url`` is a plain ``OpenAIBackend`` (``build_backend``) and pays nothing for
any of this. A ``ReplicaPool`` holds one ``OpenAIBackend`` per url (each with its own connection pool)
and reports every attempt's outcome to its balancer: time to the answer's headers feeds the latency
EWMA, connect errors, timeouts, 5xx and broken streams count as failures (4xx, 429 and cancellations
do not), and a stream counts as in flight until it is closed. A retry of the same request prefers a
replica it has not tried yet. With ``health:``, a background task polls every replica; a failing one
gets no requests until it answers again. Hedging (``backends.hedge``) races two replicas.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import aiohttp
from opentelemetry import trace
from yarl import URL

from backends.balancer import Balancer
from backends.base import RawResponse
from backends.openai import OpenAIBackend
from proxy.errors import UpstreamError, UpstreamStatus
from proxy.exchange import ApiRequest, ApiResponse, Exchange, StashKey

if TYPE_CHECKING:
    from backends.base import Backend
    from proxy.backend import WebSocketOptions
    from proxy.policyfile import BackendConfig

log = logging.getLogger(__name__)

# (pool name, replica index) of every replica this request already tried: a retry prefers another one.
TRIED: StashKey[set[tuple[str, int]]] = StashKey()


def build_backend(name: str, config: BackendConfig, url: str | None) -> Backend:
    """The client for a policy backend: a ``ReplicaPool`` for ``urls`` (several, or health-checked), else the
    plain ``OpenAIBackend``."""
    if config.urls is not None and (len(config.urls) > 1 or config.health is not None):
        return ReplicaPool(name, config, config.urls)
    return OpenAIBackend(name, config, url or (config.urls[0] if config.urls else None))


def public_url(url: str) -> str:
    """A replica's URL without credentials or query (for status views and traces)."""
    parsed = URL(url)
    return str(parsed.with_user(None).with_query(None).with_fragment(None))


def is_failure(exc: BaseException) -> bool:
    """Whether an attempt's error says the replica is unhealthy (not the client's request, not a cancel)."""
    if isinstance(exc, UpstreamStatus):
        return exc.upstream_status >= 500
    return isinstance(exc, UpstreamError)


class ReplicaPool:
    """Several base URLs serving the same models; implements the ``Backend`` interface."""

    def __init__(self, name: str, config: BackendConfig, urls: list[str]) -> None:
        self.name = name
        self.config = config
        self.members = [OpenAIBackend(name, config, url) for url in urls]
        self.labels = [public_url(url) for url in urls]
        self.balancer = Balancer(self.labels, config.balance)
        self._health: asyncio.Task[None] | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            for member in self.members:
                await member.start()
        except BaseException:
            await self.close()
            raise
        if self.config.health is not None:
            self._health = asyncio.create_task(self._health_loop(), name=f"chaperone-health-{self.name}")

    async def close(self) -> None:
        if self._health is not None:
            self._health.cancel()
            await asyncio.gather(self._health, return_exceptions=True)
            self._health = None
        for member in self.members:
            await member.close()

    # ---- requests -------------------------------------------------------------------------

    def choose(self, exchange: Exchange, also_exclude: int | None = None) -> int | None:
        """A replica for this request, not one it already tried while another is left; None: no other."""
        n = len(self.members)
        tried = exchange.stash.get(TRIED)
        exclude = {i for name, i in tried if name == self.name} if tried else set()
        if also_exclude is not None:
            if n == 1:
                return None
            exclude.add(also_exclude)
            if len(exclude) >= n:
                exclude = {also_exclude}
        elif len(exclude) >= n:
            exclude = set()
        return self.balancer.pick(exclude)

    async def send(self, exchange: Exchange, request: ApiRequest | None = None) -> ApiResponse:
        hedge = exchange.route.hedge
        if hedge is not None:
            from backends.hedge import hedged_send

            return await hedged_send(self, exchange, request, hedge.after_ms / 1000)
        i = self.choose(exchange)
        assert i is not None
        return await self.send_to(i, exchange, request)

    async def send_to(self, i: int, exchange: Exchange, request: ApiRequest | None) -> ApiResponse:
        """One attempt on replica ``i``, reported to the balancer (a stream: until it is closed)."""
        exchange.stash.setdefault(TRIED, set()).add((self.name, i))
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("chaperone.replica", self.labels[i])
        balancer = self.balancer
        balancer.begin(i)
        started = time.monotonic()
        try:
            response = await self.members[i].send(exchange, request)
        except BaseException as exc:
            balancer.finish(i)
            if is_failure(exc):
                balancer.failed(i)
            raise
        balancer.succeeded(i, time.monotonic() - started)
        if response.stream is None:
            balancer.finish(i)
            return response
        response.stream = track_stream(balancer, i, response.stream)
        return response

    def speaks(self, endpoint: str) -> bool:
        return self.members[0].speaks(endpoint)  # every replica has the same config

    async def open_websocket(self, options: WebSocketOptions) -> aiohttp.ClientWebSocketResponse[Literal[False]]:
        """A Realtime session on the replica the balancer picks (it stays there for the session's life)."""
        return await self.members[self.balancer.pick()].open_websocket(options)

    async def forward(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes, *, authorization: str | None
    ) -> RawResponse:
        i = self.balancer.pick()
        return await self.members[i].forward(method, path, query, headers, body, authorization=authorization)

    async def probe(self, timeout_s: float) -> str | None:
        """None when any replica answers (the backend can serve), else every replica's reason."""
        results = await asyncio.gather(*(member.probe(timeout_s) for member in self.members))
        if any(result is None for result in results):
            return None
        return "; ".join(f"{label}: {result}" for label, result in zip(self.labels, results, strict=True))

    def status(self) -> dict[str, Any]:
        """Replica health for ``GET /chaperone/backends`` (URLs without credentials)."""
        return {
            "strategy": self.config.balance.strategy,
            "health_check": None if self.config.health is None else self.config.health.model_dump(),
            "replicas": self.balancer.status(),
        }

    # ---- active health --------------------------------------------------------------------

    async def _health_loop(self) -> None:
        health = self.config.health
        assert health is not None
        while True:
            results = await asyncio.gather(*(self._check(i) for i in range(len(self.members))))
            for i, problem in enumerate(results):
                was_down = self.balancer.targets[i].down
                self.balancer.set_down(i, problem is not None)
                if problem is not None and not was_down:
                    log.warning("backend %s: replica %s fails its health check: %s", self.name, self.labels[i], problem)
                elif problem is None and was_down:
                    log.info("backend %s: replica %s is healthy again", self.name, self.labels[i])
            await asyncio.sleep(health.interval_s)

    async def _check(self, i: int) -> str | None:
        health = self.config.health
        assert health is not None
        member = self.members[i]
        if health.path is None:
            url = URL(member.base_url + "/models")
        else:
            url = URL(member.base_url).with_path(health.path)
        try:
            async with member.session.get(
                url,
                headers=member._headers({}, None),  # the backend's own key and headers
                timeout=aiohttp.ClientTimeout(total=health.timeout_s),
                allow_redirects=False,
            ) as resp:
                await resp.read()
                return None if resp.status < 500 else f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError) as exc:
            return type(exc).__name__


async def track_stream(balancer: Balancer, i: int, stream: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """``stream``, with target ``i`` in flight until it is closed; a stream that breaks counts as a failure."""
    try:
        async for data in stream:
            yield data
    except BaseException as exc:
        if is_failure(exc):
            balancer.failed(i)
        raise
    finally:
        balancer.finish(i)
        await _aclose(stream)


async def _aclose(stream: AsyncIterator[bytes]) -> None:
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
