"""A policy backend whose engines Chaperone starts itself (``launch:``), and the engines it shares.

``LaunchedBackend`` is a ``Backend``: it starts its replicas (``Engine``) when its policy activates,
sends each request to one ready replica through an ``OpenAIBackend`` pointed at it, and reports the
engines in ``status()``. Replica choice:

- a request for a LoRA adapter goes to a replica that has it loaded (vLLM lists adapters in
  ``/v1/models``); an adapter named in ``adapters:`` but loaded nowhere yet is loaded onto the least
  loaded replica first (``POST /v1/load_lora_adapter``);
- among the candidates, the least loaded by the engine's own Prometheus metrics (running + waiting
  requests, then KV-cache usage), or by the proxy's in-flight count for engines without metrics.

``Engines`` (one per ``Runtime``) keeps engine groups by backend name and launch options, counted by
reference, so a policy reload that leaves a ``launch:`` block unchanged keeps its engines running
(adding an adapter to ``adapters:`` included) instead of starting a second copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from backends.base import RawResponse
from backends.launch.engine import Engine
from backends.launch.metrics import load_score, parse_engine_metrics
from backends.openai import OpenAIBackend
from proxy.errors import UpstreamError, UpstreamUnavailable
from proxy.launchconfig import EngineConfig, VllmLaunch

if TYPE_CHECKING:
    from proxy.backend import WebSocketOptions
    from proxy.exchange import ApiRequest, ApiResponse, Exchange
    from proxy.policyfile import BackendConfig

__all__ = ["EngineGroup", "Engines", "LaunchedBackend"]

log = logging.getLogger(__name__)
RESTART_WAIT_S = 30.0  # how long a request waits for a restarting engine before a 503


class EngineGroup:
    """The replicas of one ``launch:`` block, and the task that reads their metrics."""

    def __init__(self, name: str, config: EngineConfig) -> None:
        self.name = name
        self.config = config
        self.engines = [Engine(config, name=name, replica=i) for i in range(config.replicas)]
        self.refs = 0
        self._scrape: asyncio.Task[None] | None = None
        self._loading: dict[tuple[int, str], asyncio.Lock] = {}

    async def start(self) -> None:
        try:
            await asyncio.gather(*(engine.start() for engine in self.engines))
        except BaseException:
            await self.stop()
            raise
        if self.config.metrics_interval_s > 0:
            self._scrape = asyncio.create_task(self._scrape_loop(), name=f"engine-{self.name}-metrics")

    async def stop(self) -> None:
        if self._scrape is not None:
            self._scrape.cancel()
            await asyncio.gather(self._scrape, return_exceptions=True)
        await asyncio.gather(*(engine.stop() for engine in self.engines), return_exceptions=True)

    async def _scrape_loop(self) -> None:
        headers = {"authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2), headers=headers) as session:
            while True:
                await asyncio.gather(*(self._scrape_one(session, e) for e in self.engines if e.ready))
                await asyncio.sleep(self.config.metrics_interval_s)

    async def _scrape_one(self, session: aiohttp.ClientSession, engine: Engine) -> None:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, UnicodeDecodeError):
            async with session.get(engine.command.root_url + "/metrics") as resp:
                if resp.status == 200:
                    engine.metrics = parse_engine_metrics(await resp.text())
            if isinstance(self.config, VllmLaunch) and self.config.lora:
                async with session.get(engine.base_url + "/models") as resp:
                    if resp.status == 200:
                        engine._note_models(await resp.read())

    async def load_adapter(self, engine: Engine, adapter: str, path: str) -> None:
        """Load ``adapter`` onto ``engine`` once (vLLM's runtime ``/v1/load_lora_adapter``); 502 if refused."""
        index = self.engines.index(engine)
        lock = self._loading.setdefault((index, adapter), asyncio.Lock())
        async with lock:
            if adapter in engine.loaded_adapters:
                return
            headers = {"authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
            body = {"lora_name": adapter, "lora_path": path}
            try:
                async with (
                    aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120), headers=headers) as session,
                    session.post(engine.base_url + "/load_lora_adapter", json=body) as resp,
                ):
                    text = await resp.text()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise UpstreamError(f"engine {engine.label}: loading adapter {adapter!r} failed: {exc}") from None
            if resp.status != 200 and "already" not in text.lower():
                raise UpstreamError(
                    f"engine {engine.label} refused adapter {adapter!r} (HTTP {resp.status}): {text[:300]}",
                    code="adapter_load_failed",
                )
            engine.loaded_adapters.add(adapter)
            log.info("[%s] loaded LoRA adapter %s from %s", engine.label, adapter, path)


class Engines:
    """Every engine group a ``Runtime`` runs, shared across policy versions by name and launch options."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], EngineGroup] = {}
        self._lock = asyncio.Lock()

    async def acquire(self, name: str, config: EngineConfig) -> EngineGroup:
        key = (name, config.identity())
        async with self._lock:
            group = self._groups.get(key)
            if group is None:
                group = EngineGroup(name, config)
                await group.start()
                self._groups[key] = group
            else:
                group.config = config  # same engine; newer adapters list
            group.refs += 1
            return group

    async def release(self, group: EngineGroup) -> None:
        async with self._lock:
            group.refs -= 1
            if group.refs > 0:
                return
            self._groups = {k: g for k, g in self._groups.items() if g is not group}
        await group.stop()

    async def close(self) -> None:
        groups, self._groups = list(self._groups.values()), {}
        await asyncio.gather(*(group.stop() for group in groups), return_exceptions=True)

    def groups(self) -> list[EngineGroup]:
        return list(self._groups.values())


class LaunchedBackend:
    """A backend served by engines Chaperone launched; one HTTP client per replica."""

    def __init__(self, name: str, config: BackendConfig, engines: Engines) -> None:
        if config.launch is None:
            raise ValueError(f"backend {name!r} has no launch block")
        self.name = name
        self.config = config
        self.launch: EngineConfig = config.launch
        self._engines = engines
        self._group: EngineGroup | None = None
        self._clients: list[OpenAIBackend] = []

    async def start(self) -> None:
        group = await self._engines.acquire(self.name, self.launch)
        self._group = group
        client_config = self.config.model_copy(update={"api_key": self.launch.api_key or self.config.api_key})
        try:
            for engine in group.engines:
                client = OpenAIBackend(self.name, client_config, engine.base_url)
                client.send_request_id = self.launch.engine != "llamacpp"  # it 400s ids that are not UUID4s
                await client.start()
                self._clients.append(client)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for client in self._clients:
            await client.close()
        self._clients = []
        group, self._group = self._group, None
        if group is not None:
            await self._engines.release(group)

    @property
    def group(self) -> EngineGroup:
        if self._group is None:
            raise RuntimeError(f"backend {self.name!r} is not started")
        return self._group

    # ---- picking a replica ------------------------------------------------------------------

    async def _pick(self, model: str | None, wait_s: float) -> int:
        """The index of the replica for ``model``: one with the adapter loaded, least loaded first."""
        group = self.group
        engines = group.engines
        ready = [i for i, e in enumerate(engines) if e.ready]
        if not ready:
            ready = await self._await_ready(wait_s)
        config = self.launch
        if isinstance(config, VllmLaunch) and model is not None and (
            model in config.lora_modules or model in config.adapters
        ):  # fmt: skip
            having = [i for i in ready if model in engines[i].loaded_adapters]
            if not having and model in config.lora_modules:
                having = ready  # loaded at start everywhere; the engine may not have listed it yet
            if not having:
                chosen = min(ready, key=lambda i: load_score(engines[i].metrics, engines[i].outstanding))
                await group.load_adapter(engines[chosen], model, config.adapters[model])
                return chosen
            ready = having
        return min(ready, key=lambda i: load_score(engines[i].metrics, engines[i].outstanding))

    async def _await_ready(self, wait_s: float) -> list[int]:
        engines = self.group.engines
        states = ", ".join(f"{e.label}: {e.state}" for e in engines)
        if wait_s > 0 and any(e.state in ("starting", "restarting") for e in engines):
            await asyncio.wait(
                [asyncio.ensure_future(e.wait_ready(wait_s)) for e in engines], return_when=asyncio.FIRST_COMPLETED
            )
        ready = [i for i, e in enumerate(engines) if e.ready]
        if not ready:
            raise UpstreamUnavailable(
                f"backend {self.name!r}: no engine is ready ({states})", code="engine_unavailable"
            )
        return ready

    # ---- the Backend interface ----------------------------------------------------------------

    def speaks(self, endpoint: str) -> bool:
        """What an OpenAI-compatible engine takes as is (the Responses and Messages APIs get translated)."""
        return endpoint in ("chat", "completions", "embeddings")

    async def open_websocket(self, options: WebSocketOptions) -> aiohttp.ClientWebSocketResponse[Literal[False]]:
        raise UpstreamError(
            f"backend {self.name!r} is a launched {self.launch.engine} engine, which serves no Realtime sessions",
            code="upstream_refused_websocket",
        )

    async def send(self, exchange: Exchange, request: ApiRequest | None = None) -> ApiResponse:
        model = exchange.route.upstream_model or (request or exchange.request).model
        index = await self._pick(model, min(RESTART_WAIT_S, max(0.0, exchange.remaining_s())))
        engine = self.group.engines[index]
        engine.outstanding += 1
        try:
            response = await self._clients[index].send(exchange, request)
        except BaseException:
            engine.outstanding -= 1
            raise
        if response.stream is None:
            engine.outstanding -= 1
            return response
        response.stream = _counted(response.stream, engine)
        return response

    async def forward(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes, *, authorization: str | None
    ) -> RawResponse:
        index = await self._pick(None, RESTART_WAIT_S)
        return await self._clients[index].forward(method, path, query, headers, body, authorization=authorization)

    async def probe(self, timeout_s: float) -> str | None:
        engines = self.group.engines if self._group is not None else []
        if any(e.ready for e in engines):
            return None
        return "no engine is ready (" + ", ".join(f"{e.label}: {e.state}" for e in engines) + ")"

    def status(self) -> dict[str, Any]:
        engines = self._group.engines if self._group is not None else []
        launch = self.launch
        adapters = sorted({**launch.lora_modules, **launch.adapters}) if isinstance(launch, VllmLaunch) else []
        return {
            "launch": {
                "engine": self.launch.engine,
                "models": self.launch.names,
                "adapters": adapters,
                "replicas": [engine.status() for engine in engines],
            },
            "checked_at": time.time(),
        }


async def _counted(stream: AsyncIterator[bytes], engine: Engine) -> AsyncIterator[bytes]:
    try:
        async for data in stream:
            yield data
    finally:
        engine.outstanding -= 1
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
