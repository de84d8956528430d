"""The running policy: activation, hot reload, in-flight accounting and the resources policies share.

A policy becomes active only after it compiled, its backends opened and its plugins started;
until then the previous one stays in force. A retired policy keeps its backends and plugins
until its last in-flight request finishes, so a reload never cuts a request or stream short.
Engines registered at run time (``register``/``unregister``, ``proxy.registered``) are kept here and
merged into every policy activated, so a reload keeps them; they live in this process only.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from proxy.backend import Backend, Wiring, unknown_types
from proxy.circuit import Circuits, wanted
from proxy.conversations import Conversations
from proxy.keys import KeyRing
from proxy.policy import Caller, Policy, PolicyError, compile_policy_text
from proxy.registered import EngineClash, Registration, clash, merge
from proxy.splits import backend_names
from proxy.store import Clock, Store, StoreConfig, StoreUnavailable, open_store
from proxy.subcall import Subcaller

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from proxy.chain import Terminal
    from proxy.registry import PluginRegistry

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Resources:
    """What plugins get at ``on_startup``: the shared state store and the state directory."""

    store: Store
    home: Path


@dataclass(eq=False)
class Active:
    """A policy in force (or retiring) with the backends and store it uses."""

    policy: Policy
    backends: dict[str, Backend]
    store: Store
    digest: str
    terminal: Terminal
    traced: bool
    keyring: KeyRing
    inflight: int = 0
    retired: bool = False
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    subcaller: Subcaller | None = None
    conversations: Conversations | None = None  # stored Responses API answers, in this policy's store
    circuits: Circuits | None = None  # [reliability] the backends' circuit breakers (state shared in the store)
    models_cache: dict[str | None, tuple[float, list[Any]]] = field(default_factory=dict)  # [launcher] GET /v1/models
    data: bytes = b""  # [register] the policy file this was compiled from, to compile it again with new engines
    engines: dict[str, Registration] = field(default_factory=dict)  # [register] the registered engines merged in
    loaded_at: float = 0.0  # [console2] wall time this policy took effect

    async def authenticate(self, authorization: str | None) -> Caller:
        """The caller for an ``Authorization`` header: static keys, virtual keys or open mode (401 if none)."""
        return await self.keyring.authenticate(authorization)


class Runtime:
    """Owns the active policy and swaps it atomically on reload."""

    def __init__(
        self,
        policy_path: Path,
        registry: PluginRegistry,
        *,
        wiring: Wiring,
        home: Path,
        tracer: Tracer | None = None,
        reload_interval_s: float = 1.0,
        clock: Clock = time.time,
    ) -> None:
        self.policy_path = policy_path
        self.registry = registry
        self.wiring = wiring  # the concrete backends, the terminal and the bundled servers (from the edge)
        self.home = home
        self.tracer = tracer
        self.reload_interval_s = reload_interval_s
        self.clock = clock  # wall time for the store and virtual keys; a fake one in tests
        self.current: Active | None = None
        self.last_error: str | None = None
        self.last_failure: tuple[float, str, str] | None = None  # [console2] (when, digest, error), kept
        self._failed_digest: str | None = None  # [console2] a broken file reported once, not every poll
        self.reloads = 0
        self.stopping = False  # set when the server stops accepting; in-flight requests are finishing
        self.streams: set[asyncio.Task[Any]] = set()  # handlers writing a stream right now
        self._stores: dict[StoreConfig, list[Any]] = {}  # config -> [store, refcount]
        self._builtins: dict[str, tuple[web.AppRunner, str]] = {}
        self._watch: asyncio.Task[None] | None = None
        self._retiring: set[asyncio.Task[None]] = set()
        self._ready_cache: tuple[Active, float, list[str]] | None = None
        self.engines: dict[str, Registration] = {}  # [register] POST /chaperone/engines, kept across reloads
        self._swapping = asyncio.Lock()  # one activation at a time: reloads and (de)registrations

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load and activate the policy; a bad policy at start is fatal (raises PolicyError)."""
        try:
            data, digest = self._read()
        except OSError as exc:
            raise PolicyError(str(self.policy_path), [f"cannot read the file: {exc.strerror or exc}"]) from None
        self.current = await self._activate(self._compile(data), digest, data)
        if self.reload_interval_s > 0:
            self._watch = asyncio.create_task(self._watch_file(), name="chaperone-policy-watch")
        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self.request_reload)
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    async def stop(self) -> None:
        try:
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        except (NotImplementedError, RuntimeError, ValueError):
            pass
        if self._watch is not None:
            self._watch.cancel()
            await asyncio.gather(self._watch, return_exceptions=True)
        if self.current is not None:
            await self._close(self.current)
            self.current = None
        await asyncio.gather(*self._retiring, return_exceptions=True)
        for store, _ in self._stores.values():
            await store.close()
        self._stores.clear()
        for runner, _ in self._builtins.values():
            await runner.cleanup()
        self._builtins.clear()
        await self.wiring.shutdown()  # [launcher] the engines of launch: backends

    # ---- requests -------------------------------------------------------------------------

    def begin_stop(self, grace_s: float) -> None:
        """The server stopped accepting. Streams still running just before the grace period ends are
        cancelled by us, while their sockets are open, so each can tell its client why it ends."""
        self.stopping = True
        asyncio.get_running_loop().call_later(max(0.0, grace_s - 0.25), self._cut_streams)

    def _cut_streams(self) -> None:
        for task in list(self.streams):
            task.cancel()

    def acquire(self) -> Active:
        active = self.current
        if active is None:
            raise RuntimeError("no policy is active")
        active.inflight += 1
        return active

    def in_force(self) -> Active:
        """The active policy with its store and keys, for handlers that never reach a backend."""
        if self.current is None:
            raise RuntimeError("no policy is active")
        return self.current

    def acquire_policy(self) -> Policy:
        """The policy in force, for handlers that never reach a backend (no in-flight accounting)."""
        if self.current is None:
            raise RuntimeError("no policy is active")
        return self.current.policy

    async def check_ready(self) -> list[str]:
        """What keeps the proxy from being ready (backends that do not answer, an unreachable store)."""
        active = self.current
        if active is None:
            return ["no policy is active"]
        now = time.monotonic()
        cached = self._ready_cache
        if cached is not None and cached[0] is active and now - cached[1] < 2.0:
            return cached[2]
        names = list(active.backends)
        results = await asyncio.gather(*(active.backends[n].probe(2.0) for n in names))
        problems = [f"backend {n}: {r}" for n, r in zip(names, results, strict=True) if r]
        try:
            await active.store.ping()
        except StoreUnavailable as exc:
            problems.append(f"store: {exc}")
        self._ready_cache = (active, now, problems)
        return problems

    def release(self, active: Active) -> None:
        active.inflight -= 1
        if active.retired and active.inflight == 0:
            self._schedule_close(active)

    # ---- reload ---------------------------------------------------------------------------

    def request_reload(self) -> None:
        task = asyncio.ensure_future(self._reload_quietly())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _reload_quietly(self) -> None:
        await self.reload(force=True)

    async def reload(self, *, force: bool = False) -> bool:
        """Load the file again; swap only if it changed and is valid. True when a new policy took effect."""
        async with self._swapping:
            return await self._reload(force=force)

    async def _reload(self, *, force: bool) -> bool:
        try:
            data, digest = self._read()
        except OSError as exc:
            self._report(f"{self.policy_path}: cannot read the file: {exc.strerror or exc}")
            return False
        if self.current is not None and digest in (self.current.digest, self._failed_digest) and not force:
            if digest == self.current.digest and self._failed_digest is not None:  # [console2] the file is back
                self.last_error = self._failed_digest = None
            return False
        try:
            active = await self._activate(self._compile(data), digest, data)
        except PolicyError as exc:
            self._report(exc.report(), digest)
            return False
        except Exception as exc:
            self._report(f"{self.policy_path}: could not activate the new policy: {exc}", digest)
            return False
        self._failed_digest = None  # [console2]
        self._swap(active)
        self.last_error = None
        self.reloads += 1
        log.info("policy reloaded from %s", self.policy_path)
        return True

    def _swap(self, active: Active) -> None:
        old, self.current = self.current, active
        if old is not None:
            old.retired = True
            if old.inflight == 0:
                self._schedule_close(old)

    # ---- registered engines [register] ----------------------------------------------------

    async def register(self, reg: Registration) -> bool:
        """Merge an engine into the policy in force (replacing one of that name); False if it was already so.

        Raises ``EngineClash`` when its name or a model is the policy's or another engine's.
        """
        async with self._swapping:
            current = self.in_force()
            if current.engines.get(reg.name) == reg:
                return False
            problem = clash(current.policy.backends, current.policy.routes, reg, current.engines)
            if problem is not None:
                raise EngineClash(problem)
            previous = self.engines.get(reg.name)
            self.engines[reg.name] = reg
            try:
                await self._reactivate(current)
            except BaseException:
                if previous is None:
                    del self.engines[reg.name]
                else:
                    self.engines[reg.name] = previous
                raise
            log.info("engine %s registered: %s at %s", reg.name, ", ".join(reg.models), reg.url)
            return True

    async def unregister(self, name: str) -> Registration | None:
        """Take a registered engine out of the policy in force; None when no engine has that name."""
        async with self._swapping:
            reg = self.engines.pop(name, None)
            if reg is None:
                return None
            try:
                await self._reactivate(self.in_force())
            except BaseException:
                self.engines[name] = reg
                raise
            log.info("engine %s unregistered", name)
            return reg

    async def _reactivate(self, current: Active) -> None:
        """The policy in force again (compiled afresh: plugins are never started twice), with ``self.engines``."""
        self._swap(await self._activate(self._compile(current.data), current.digest, current.data))

    def _report(self, message: str, digest: str = "") -> None:
        self.last_error = message
        self.last_failure = (self.clock(), digest, message)  # [console2]
        self._failed_digest = digest or None  # [console2] the active policy keeps its own digest
        log.error("policy not reloaded, the last good policy stays in force:\n%s", message)

    def _compile(self, data: bytes) -> Policy:
        source = str(self.policy_path)
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PolicyError(source, [f"the file is not UTF-8 text: {exc}"]) from None
        return compile_policy_text(text, self.registry, source=source, tracer=self.tracer)

    def _read(self) -> tuple[bytes, str]:
        data = self.policy_path.read_bytes()
        return data, hashlib.sha256(data).hexdigest()

    async def _watch_file(self) -> None:
        while True:
            await asyncio.sleep(self.reload_interval_s)
            try:
                await self.reload()
            except Exception:
                log.exception("policy watch failed")

    # ---- activation -----------------------------------------------------------------------

    async def _activate(self, policy: Policy, digest: str, data: bytes) -> Active:
        policy, engines, skipped = merge(policy, self.engines)  # [register]
        for line in skipped:
            log.warning("%s", line)
        problems = unknown_types(policy.backends, self.wiring)
        if problems:
            raise PolicyError(str(self.policy_path), problems)
        store = await self._acquire_store(policy.store)
        backends: dict[str, Backend] = {}
        started_chains = []
        try:
            for name in sorted(backend_names(policy.routes.values())):  # [balance] split variants too
                config = policy.backends[name]
                url = await self._builtin_url(config.builtin) if config.builtin else config.url
                client = self.wiring.build(name, config, url)  # [launcher] a launch: block starts its engine
                await client.start()
                backends[name] = client
            resources = Resources(store=store, home=self.home)
            for chain in policy.chains.values():
                await chain.startup(resources)
                started_chains.append(chain)
        except BaseException:
            for chain in reversed(started_chains):
                await chain.shutdown()
            for backend in backends.values():
                await backend.close()
            await self._release_store(policy.store)
            raise
        keyring = KeyRing(policy, store, clock=self.clock)
        conversations = Conversations(store, policy.responses)
        circuits = Circuits(  # [reliability]
            wanted({name: policy.backends[name].circuit for name in backends}, _fallen_from(policy)), store, self.clock
        )
        terminal = self.wiring.terminal(backends, self.tracer, conversations, circuits if circuits.breakers else None)
        active = Active(policy, backends, store, digest, terminal, self.tracer is not None, keyring)
        active.data, active.engines = data, engines  # [register]
        active.circuits = circuits
        active.conversations = conversations
        active.subcaller = Subcaller(terminal)
        active.loaded_at = self.clock()  # [console2]
        return active

    def _schedule_close(self, active: Active) -> None:
        if active.closed.is_set():
            return
        active.closed.set()
        task = asyncio.ensure_future(self._close(active))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _close(self, active: Active) -> None:
        active.closed.set()
        if active.conversations is not None:
            await active.conversations.drain()  # stored responses still being written need the store
        for chain in reversed(list(active.policy.chains.values())):
            await chain.shutdown()
        for backend in active.backends.values():
            await backend.close()
        await self._release_store(active.policy.store)

    async def _acquire_store(self, config: StoreConfig) -> Store:
        entry = self._stores.get(config)
        if entry is None:
            entry = [open_store(config, self.home, clock=self.clock), 0]
            self._stores[config] = entry
        entry[1] += 1
        store: Store = entry[0]
        return store

    async def _release_store(self, config: StoreConfig) -> None:
        entry = self._stores.get(config)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del self._stores[config]
            await entry[0].close()

    async def _builtin_url(self, kind: str) -> str:
        """Start a bundled backend once per process, on a free loopback port; its base URL."""
        if kind not in self._builtins:
            make_app = self.wiring.builtins.get(kind)
            if make_app is None:
                raise PolicyError(str(self.policy_path), [f"builtin backend {kind!r} is not available here"])
            runner = web.AppRunner(make_app(), handler_cancellation=True, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            self._builtins[kind] = (runner, f"http://{host}:{port}/v1")
        return self._builtins[kind][1]

    def builtin_urls(self) -> dict[str, str]:
        return {kind: url for kind, (_, url) in self._builtins.items()}


def _fallen_from(policy: Policy) -> set[str]:
    """[reliability] Backends some route falls back from (their circuits are on by default)."""
    return {route.backend for route in policy.routes.values() if route.fallback}


RUNTIME = web.AppKey("runtime", Runtime)
