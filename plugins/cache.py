"""Answer repeated requests from the store: exact matches, and (semantic mode) near-identical last turns.

See ``plugins/_cache/keys.py`` for what a key covers and what partitions separate, ``guards.py`` for
the vetoes against semantic false hits, ``shared.py`` for the store layout, eviction and how replicas
converge, ``replay.py`` for streams. Outcomes go to ``exchange.verdicts["cache"]`` (``hit``, ``miss``,
``shadow-hit``, ``bypass``) and to the ``x-chaperone-cache`` response header; a hit carries the cached
``usage`` unchanged (the cost plugin charges nothing when the verdict is ``hit``).

Place it where a hit should stop the chain: plugins before it still run on a hit (a ``budget`` before
it counts hits against rate limits; ``pii`` before it means keys are over masked text), plugins after it
(and the upstream) do not. What is stored is the answer as the steps after it left it.

Not cached (``bypass``): temperatures above ``max_temperature`` (a missing one counts as
``missing_temperature``, 1.0 by default, as the APIs assume), Responses requests that ask the upstream
to store them (``store`` not false) or run in the background. Streams of every API are cached: a hit
is replayed in the API's own event shape, whether the answer was stored from a stream or not.
Not stored: non-200 answers, errors, answers cut short (``length``, ``max_tokens``, ``content_filter``,
an unfinished stream), tool calls when ``cache_tool_calls`` is off, answers answered by another plugin.

Request header ``x-chaperone-cache`` (removed before the upstream sees it): ``no-cache`` leaves the
cache out of this request (``bypass``: no lookup, no store, no coalescing), ``no-store`` may be
answered from the cache but its own answer is not kept, ``refresh`` skips the lookup and replaces the
stored answer with the fresh one. Identical concurrent misses (same exact key) in one process wait for
the first one's answer (streamed waiters get it replayed once it is whole); across processes and
replicas they are not coalesced (each calls upstream; the store then holds one of the answers).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import orjson

from plugins._cache import replay
from plugins._cache.config import CacheConfig
from plugins._cache.guards import features, swapped_slot, veto
from plugins._cache.index import Embedder, Vector
from plugins._cache.keys import Keys, exact_keys, semantic_keys, temperature_of, tenant_of
from plugins._cache.shared import Entry, Shared
from proxy import ApiResponse, Exchange, InvalidRequest, PluginRegistry, StashKey, hookimpl, sse
from proxy.runtime import Resources

log = logging.getLogger(__name__)

HEADER = "x-chaperone-cache"
CONTROLS = frozenset({"no-cache", "no-store", "refresh"})
_CUT = frozenset({"length", "max_tokens", "content_filter", "max_output_tokens"})
_TOOLS = frozenset({"tool_calls", "function_call", "tool_use"})
_ENDPOINTS = frozenset({"chat", "completions", "embeddings", "responses", "messages"})
_INLINE = 256  # a Responses / Messages stream of more blocks is assembled (every event parsed) on a worker thread


@dataclass(slots=True)
class _State:
    keys: Keys
    store: bool
    verdict: str = "miss"
    similarity: float | None = None
    vector: Vector | None = None
    leader: asyncio.Future[bytes | None] | None = None
    blocks: list[bytes] | None = None  # a streamed answer's bytes, assembled once it is whole
    raw: bytes | None = None


STATE: StashKey[_State] = StashKey()


class Cache:
    name = "cache"
    Config = CacheConfig

    def __init__(self, config: CacheConfig) -> None:
        self.config = config
        self.semantic = config.mode == "semantic"
        self.embedder = Embedder() if self.semantic else None
        self.shared: Shared | None = None
        self.inflight: dict[str, asyncio.Future[bytes | None]] = {}

    @property
    def stored(self) -> int:
        """Answers this instance has written to the store (diagnostics; tests wait on it)."""
        return self.shared.written if self.shared is not None else 0

    @hookimpl
    async def on_startup(self, resources: Resources) -> None:
        c = self.config
        self.shared = Shared(resources.store, ttl_s=c.ttl_s, cap=c.max_entries, sync_interval_s=c.sync_interval_s)
        if self.embedder is not None:
            await asyncio.to_thread(self.embedder.load)

    @hookimpl
    async def on_shutdown(self) -> None:
        if self.shared is not None:
            await self.shared.flush()  # answers put in the last moments reach the store before it closes

    @hookimpl
    async def on_request(self, exchange: Exchange) -> ApiResponse | None:
        control = exchange.request.headers.pop(HEADER, "").strip().lower()
        if control and control not in CONTROLS:
            raise InvalidRequest(
                f"header {HEADER} must be one of {', '.join(sorted(CONTROLS))}, not {control!r}",
                param=HEADER, code="invalid_cache_control",
            )  # fmt: skip
        if self.shared is None or control == "no-cache" or self._bypass(exchange):
            exchange.verdicts[self.name] = "bypass"
            return None
        tenant = tenant_of(exchange.caller, self.config.share_across_keys)
        keys = (semantic_keys if self.semantic else exact_keys)(exchange.request, tenant)
        if keys.query is not None and len(keys.query) > self.config.max_query_chars:
            keys = Keys(keys.exact, keys.partition, None)
        state = _State(keys, store=control != "no-store")
        exchange.stash[STATE] = state
        exchange.verdicts[self.name] = "miss"
        if control != "refresh":
            found = await self._lookup(exchange, state)
            if found is not None:
                if not self.config.shadow:
                    return self._hit(exchange, *found)
                state.verdict, state.similarity = "shadow-hit", found[1]
                exchange.verdicts[self.name] = "shadow-hit"
                log.info("cache shadow-hit similarity=%.4f request_id=%s", found[1], exchange.request_id)
        if self.config.coalesce and not self.config.shadow and state.store and control != "refresh":
            return await self._coalesce(exchange, state)
        return None

    def _bypass(self, exchange: Exchange) -> bool:
        request = exchange.request
        body = request.body
        if request.endpoint not in _ENDPOINTS:
            return True
        if request.endpoint == "responses" and (body.get("store") is not False or body.get("background")):
            return True
        if request.endpoint == "embeddings":
            return False
        return temperature_of(request, self.config.missing_temperature) > self.config.max_temperature

    async def _lookup(self, exchange: Exchange, state: _State) -> tuple[Entry, float] | None:
        """The exact entry, else (semantic mode) the nearest unvetoed one; both looked up at once."""
        assert self.shared is not None
        shared = self.shared
        if self.embedder is None or state.keys.query is None:
            entry = await shared.lookup(state.keys.partition, state.keys.exact)
            return None if entry is None else (entry, 1.0)
        index = await shared.index(state.keys.partition)
        query, embedder, config = state.keys.query, self.embedder, self.config

        def search() -> tuple[Vector, list[tuple[str, float]]]:
            vector = embedder.embed(query)
            mine = features(query)
            hits = []
            for cand in index.search(vector, config.threshold, config.candidates):
                reason = veto(mine, cand.features)
                if reason is None and swapped_slot(mine, cand.features, embedder.word_similarity):
                    reason = "slot"
                if reason is None:
                    hits.append((cand.key, cand.similarity))
            return vector, hits

        entry, (state.vector, hits) = await asyncio.gather(
            shared.lookup(state.keys.partition, state.keys.exact), asyncio.to_thread(search)
        )
        if entry is not None:
            return entry, 1.0
        for key, similarity in hits:
            entry = await shared.lookup(state.keys.partition, key)
            if entry is not None:
                return entry, similarity
            shared.forget(state.keys.partition, key)
        return None

    async def _coalesce(self, exchange: Exchange, state: _State) -> ApiResponse | None:
        """Wait for an identical request in flight here (a future) or in another process (a store lock)."""
        assert self.shared is not None
        key = state.keys.exact
        waiting = self.inflight.get(key)
        timeout = max(0.0, min(self.config.coalesce_wait_s, exchange.remaining_s()))
        if waiting is None:
            state.leader = self.inflight[key] = asyncio.get_running_loop().create_future()
            if not self.config.coalesce_across_processes or await self.shared.lock(key, timeout):
                return None
            state.leader.set_result(None)  # another process leads: followers here poll with this one
            state.leader = None
            del self.inflight[key]
            entry = await self.shared.wait(state.keys.partition, key, timeout)
            return None if entry is None else self._hit(exchange, entry, 1.0)
        try:
            body = await asyncio.wait_for(asyncio.shield(waiting), timeout)
        except TimeoutError:
            body = None
        if body is not None:
            return self._hit(exchange, Entry(body, time.time()), 1.0)
        if self.config.coalesce_across_processes:  # the one we waited for followed another process
            entry = await self.shared.wait(state.keys.partition, key, max(0.0, exchange.remaining_s()))
            if entry is not None:
                return self._hit(exchange, entry, 1.0)
        return None  # the first request failed or was not storable: call upstream ourselves

    def _hit(self, exchange: Exchange, entry: Entry, similarity: float) -> ApiResponse | None:
        """The stored answer as this request's response; None (a miss) for a kept stream that does not
        assemble into a whole answer, which is never served as an empty one."""
        request = exchange.request
        body = entry.body
        whole = None
        if not request.stream and replay.is_raw(body):  # a stored stream answers a whole request: assembled now
            whole = replay.raw_whole(request.endpoint, body)
            if whole is None:
                log.warning("cache: a stored stream did not assemble; served as a miss (request_id=%s)",
                            exchange.request_id)  # fmt: skip
                return None
        exchange.verdicts[self.name] = "hit"
        exchange.stash[STATE].verdict = "hit"
        headers = {HEADER: "hit", f"{HEADER}-similarity": f"{similarity:.4f}",
                   f"{HEADER}-age": str(max(0, int(time.time() - entry.created)))}  # fmt: skip
        exchange.skip_stream_hooks(self)
        if request.stream:
            options = request.body.get("stream_options")
            usage = isinstance(options, dict) and options.get("include_usage") is True
            if replay.is_raw(body):
                stream = sse.once(replay.raw_replay(body, usage))
            elif request.endpoint in replay.NAMED:
                stream = sse.once(replay.named_replay(request.endpoint, orjson.loads(body)))
            else:
                stream = replay.sse(replay.chunks(request.endpoint, orjson.loads(body), usage))
            return ApiResponse(200, stream=stream, headers=headers, source=self.name)
        if whole is not None:
            return ApiResponse(200, body=whole, headers=headers, source=self.name)
        return ApiResponse(200, raw=body, headers=headers, source=self.name)

    @hookimpl
    async def on_response(self, exchange: Exchange) -> None:
        response = exchange.response
        assert response is not None
        state = exchange.stash.get(STATE)
        if state is None:
            response.headers[HEADER] = "bypass"
            exchange.skip_stream_hooks(self)
            return
        if response.source == self.name:
            return
        response.headers[HEADER] = state.verdict
        if state.similarity is not None:
            response.headers[f"{HEADER}-similarity"] = f"{state.similarity:.4f}"
        if not state.store or response.status != 200 or response.source != "upstream":
            state.store = False
            exchange.skip_stream_hooks(self)
        elif response.stream is not None:
            state.blocks = []
        else:
            state.raw = response.raw if response.body is None else orjson.dumps(response.body)

    @hookimpl
    def observe_bytes(self, exchange: Exchange, data: bytes) -> None:
        state = exchange.stash.get(STATE)
        if state is not None and state.blocks is not None:
            state.blocks.append(data)

    @hookimpl
    async def on_complete(self, exchange: Exchange) -> None:
        state = exchange.stash.get(STATE)
        if state is None or state.verdict == "hit":
            return
        body: bytes | None = None
        try:
            if state.blocks is not None and exchange.request.endpoint in replay.NAMED and len(state.blocks) > _INLINE:
                body = await asyncio.to_thread(self._storable, exchange, state)  # a long stream: parsed off the loop
            else:
                body = self._storable(exchange, state)
            if body is not None:
                await self._store(state, body)
        finally:
            if state.leader is not None:
                if not state.leader.done():
                    state.leader.set_result(body)
                if self.inflight.get(state.keys.exact) is state.leader:
                    del self.inflight[state.keys.exact]
                if self.config.coalesce_across_processes and self.shared is not None:
                    if body is not None:
                        await self.shared.flush()  # written before the lock goes: followers elsewhere then find it
                    await self.shared.unlock(state.keys.exact)

    def _storable(self, exchange: Exchange, state: _State) -> bytes | None:
        if exchange.error is not None or not state.store:
            return None
        if state.blocks is not None:
            endpoint, body = exchange.request.endpoint, exchange.request.body
            kept = None if endpoint in replay.NAMED else replay.raw_entry(state.blocks, exchange.usage, body.get("n"))
            if kept is not None:  # one finished choice: kept as its events, not parsed (see replay.raw_entry)
                reason, raw = kept
                if reason in _CUT or (reason in _TOOLS and not self.config.cache_tool_calls):
                    return None
                return raw
            whole = replay.assemble(exchange.request.endpoint, state.blocks, exchange.usage)
            if whole is None or not self._complete(exchange.request.endpoint, whole):
                return None
            return orjson.dumps(whole)
        if state.raw is None:
            return None
        response = exchange.response
        if response is not None and response.body is None and response.raw is state.raw:
            parsed = response.peek()  # the handler and the cost plugin read the same parse
        else:
            try:
                parsed = orjson.loads(state.raw)
            except orjson.JSONDecodeError:
                return None
        return state.raw if isinstance(parsed, dict) and self._complete(exchange.request.endpoint, parsed) else None

    def _complete(self, endpoint: str, body: dict[str, Any]) -> bool:
        """Whether an answer is whole and worth keeping (see the module doc)."""
        if body.get("error") is not None:  # a Responses answer carries "error": null when it succeeded
            return False
        if endpoint == "embeddings":
            return isinstance(body.get("data"), list)
        if endpoint == "responses":
            ends = {str(item.get("type")) for item in body.get("output") or () if isinstance(item, dict)}
            tools = "function_call" in ends
            return body.get("status") == "completed" and (self.config.cache_tool_calls or not tools)
        if endpoint == "messages":
            ends = {str(body.get("stop_reason"))}
        else:
            choices = body.get("choices")
            if not isinstance(choices, list) or not choices:
                return False
            ends = {str(c.get("finish_reason")) for c in choices if isinstance(c, dict)}
        if ends & _CUT or "None" in ends:
            return False
        return self.config.cache_tool_calls or not ends & _TOOLS

    async def _store(self, state: _State, body: bytes) -> None:
        assert self.shared is not None
        query = state.keys.query if self.embedder is not None else None
        vector = state.vector
        if query is not None and vector is None and self.embedder is not None:
            vector = await asyncio.to_thread(self.embedder.embed, query)
        self.shared.put(state.keys.partition, state.keys.exact, body, query, vector if query else None)


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    register(Cache)
