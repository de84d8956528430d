"""Record finished exchanges, PII-masked, into a dataset store under ``CHAPERONE_HOME`` (``chaperone dataset``).

What a record holds is ``plugins._capture.schema`` (versioned): the request as the model saw it, the answer,
usage, latency, model and backend, key name, plugin verdicts, the judge's score, the gateway's events (judge
refinement or fallback, schema repair, retry, fallback) and the drafts it discarded (preference pairs).
The request path only snapshots bytes and offers the record to a bounded queue (``plugins._capture.writer``):
masking and SQLite writes happen in a background thread, a full queue drops the record (counted in
``exchange.verdicts["capture"] = "dropped"`` and the writer's stats), so capture never delays an answer.

Masking (``plugins._capture.mask``): with a ``pii`` step before ``capture`` in the chain that masked something,
its placeholders are reused (and any original it restored into the answer is masked again); otherwise (no
such step, or it found nothing: it may have failed open), or with ``mask: always``, capture runs the same
recognizers itself (cheap on clean text: their pre-checks skip it). Originals never reach the store.
Place ``capture`` after ``pii``, ``judge`` and ``schema`` in the chain: its ``wrap_call`` then sees every
draft those steps discard.
"""

from __future__ import annotations

import hashlib
import logging
import time
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from plugins._capture import worker
from plugins._capture.mask import Pending
from plugins._capture.schema import DEFAULT_PATH, OPEN_KEY, SCHEMA_VERSION
from plugins._capture.writer import Writer
from plugins._pii.config import DetectorConfig
from plugins.judge import SCORES
from plugins.pii import STATE as PII_STATE
from proxy import ApiResponse, CallNext, Exchange, PluginRegistry, StashKey, hookimpl
from proxy.runtime import Resources

log = logging.getLogger(__name__)

SCHEMA_REPAIR_MARK = "Your previous answer was rejected by a validator"  # plugins._schema.repair.repair_text
JUDGE_REFINE_MARK = "A reviewer checked your answer"  # plugins.judge._critique
Endpoint = Literal["chat", "completions", "responses", "messages", "embeddings"]


class CaptureConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    path: str = Field(default=DEFAULT_PATH, description="The SQLite file, relative to CHAPERONE_HOME (or absolute).")
    sample: float = Field(default=1.0, ge=0, le=1, description="Share of requests captured (stable by request id).")
    models: frozenset[str] = Field(default=frozenset(), description="Only these requested models (empty: all).")
    keys: frozenset[str] = Field(default=frozenset(), description="Only these key names (empty: all; '(open)').")
    endpoints: frozenset[Endpoint] = Field(
        default=frozenset({"chat", "completions", "responses", "messages"}), description="Endpoints captured."
    )
    status: Literal["any", "success", "error"] = Field(default="any", description="Which outcomes are captured.")
    tags_header: str = Field(
        default="x-chaperone-tags", description="Request header with comma-separated tags stored with the record."
    )
    tags: frozenset[str] = Field(
        default=frozenset(), description="Only requests carrying one of these tags (empty: all)."
    )
    retention: Literal["full", "metadata_only"] = Field(
        default="full", description="full: masked texts and metadata; metadata_only: no text at all."
    )
    mask: Literal["auto", "always"] = Field(
        default="auto",
        description="auto: reuse a pii step placed before capture, else detect here; always: also detect here.",
    )
    pii: DetectorConfig = Field(
        default_factory=DetectorConfig, description="Capture's own recognizers (same fields as the pii plugin's)."
    )
    writer: Literal["process", "thread"] = Field(
        default="process",
        description="Where masking and writes run: a process of their own (no GIL shared with answers) or a thread.",
    )
    max_queue: int = Field(default=10_000, ge=1, description="Records waiting to be written; beyond, dropped.")
    batch: int = Field(default=256, ge=1, le=10_000, description="Records masked and written per transaction.")


@dataclass(slots=True)
class _State:
    """One captured request: what capture saw of it while it ran."""

    tags: list[str]
    calls: int = 0  # answers asked through capture's wrap_call
    answered: bool = False  # the last call returned a whole 200 answer
    request: bytes | None = None
    last: bytes | None = None  # the last answer call_next returned through capture
    final: bytes | None = None
    chunks: list[bytes] | None = None  # a stream's raw SSE blocks
    drafts: list[tuple[str, bytes]] = field(default_factory=list)


STATE = StashKey[_State]()


class Capture:
    name = "capture"
    Config = CaptureConfig

    def __init__(self, config: CaptureConfig) -> None:
        self.config = config
        self._cutoff = int(config.sample * 0xFFFFFFFF)
        self._full = config.retention == "full"  # else metadata only: no text is even snapshotted
        self.writer: Writer | None = None
        self._digests: dict[str, str | None] = {}

    # ---- lifecycle ---------------------------------------------------------------------------------------------

    @hookimpl
    async def on_startup(self, resources: Resources) -> None:
        path = Path(self.config.path)
        path = path if path.is_absolute() else resources.home / path
        writer = Writer(path, self.config.pii.model_dump(), max_queue=self.config.max_queue, batch=self.config.batch,
                        mode=self.config.writer)  # fmt: skip
        await writer.start()
        self.writer = writer

    @hookimpl
    async def on_shutdown(self) -> None:
        if self.writer is not None:
            await self.writer.stop()
            self.writer = None

    @property
    def path(self) -> Path | None:
        return self.writer.path if self.writer is not None else None

    def stats(self) -> dict[str, int]:
        """The writer's counters: kept, dropped, written, failed, batches."""
        return self.writer.stats.as_dict() if self.writer is not None else {}

    # ---- request path (snapshots only) --------------------------------------------------------------------------

    def wanted(self, exchange: Exchange) -> bool:
        config, request = self.config, exchange.request
        if config.sample < 1 and zlib.crc32(exchange.request_id.encode()) >= self._cutoff:
            return False
        if request.endpoint not in config.endpoints or (config.models and request.model not in config.models):
            return False
        return not config.keys or (exchange.caller.name or OPEN_KEY) in config.keys

    @hookimpl
    async def on_request(self, exchange: Exchange) -> None:
        if self.writer is None or not self.wanted(exchange):
            return
        raw = exchange.request.headers.get(self.config.tags_header.lower(), "")
        tags = sorted({t.strip() for t in raw.split(",") if t.strip()})
        if self.config.tags and not self.config.tags.intersection(tags):
            return
        exchange.stash[STATE] = _State(tags)

    @hookimpl
    async def wrap_call(self, exchange: Exchange, call_next: CallNext) -> ApiResponse:
        state = exchange.stash.get(STATE)
        if state is None:
            return await call_next(exchange)
        state.calls += 1
        if state.calls == 1:
            state.request = orjson.dumps(exchange.request.body) if self._full else None
        elif state.answered:  # called again after an answer: that answer was discarded, say why
            state.drafts.append((_draft_source(exchange), state.last or b""))
        state.answered, state.last = False, None
        response = await call_next(exchange)
        state.answered = response.stream is None and response.status == 200
        state.last = _snapshot(response) if self._full else None
        return response

    @hookimpl
    async def on_response(self, exchange: Exchange) -> None:
        state = exchange.stash.get(STATE)
        response = exchange.response
        if response is None or state is None:
            return
        if not self._full:
            return
        if response.stream is None:
            state.final = _snapshot(response)
        elif response.status == 200:
            state.chunks = []  # the upstream's bytes, before any step restores PII in them: never parsed here
            response.stream = _tee(response.stream, state.chunks)

    @hookimpl
    async def on_complete(self, exchange: Exchange) -> None:
        state = exchange.stash.get(STATE)
        writer = self.writer
        if state is None or writer is None:
            return
        status = _status(exchange)
        if (self.config.status == "success" and status >= 400) or (self.config.status == "error" and status < 400):
            return
        pending = self._pending(exchange, state, status)
        exchange.verdicts[self.name] = "kept" if writer.offer(pending) else "dropped"

    def _pending(self, exchange: Exchange, state: _State, status: int) -> Pending:
        scores = exchange.stash.get(SCORES) or []
        drafts = list(state.drafts)
        if exchange.verdicts.get("judge") == "fallback" and state.answered and state.last != state.final:
            drafts.append(("judge_fallback", state.last or b""))
        pii = exchange.stash.get(PII_STATE)
        names = [step.name for step in exchange.chain.steps]
        pii_before = "pii" in names and names.index("pii") < _index_of(exchange, self)
        meta = _meta(exchange, status, state.tags, drafts, self._digest(exchange.policy.source))
        meta.update(judge_score=scores[-1] if scores else None, retention=self.config.retention)
        text = self._full and state.request is not None
        return Pending(meta, exchange.request.endpoint, state.request, state.final, state.chunks, drafts,
                       pii.mapping.pairs() if pii is not None else [],
                       own=self.config.mask == "always" or not pii_before or pii is None, text=text)  # fmt: skip

    def _digest(self, source: str) -> str | None:
        if source not in self._digests:  # once per compiled policy (a reload builds a new instance)
            try:
                self._digests[source] = hashlib.sha256(Path(source).read_bytes()).hexdigest()[:16]
            except OSError:
                self._digests[source] = None
        return self._digests[source]

    # ---- feedback (POST /chaperone/feedback, proxy.feedback) ------------------------------------------------------

    async def owner_of(self, request_id: str) -> str | None:
        """The key name of a captured request (after writing what is queued), or None when not captured."""
        if self.writer is None:
            return None
        await self.writer.flush()
        owner = await self.writer.call(worker.key_of, self.writer.key, request_id)
        return owner if isinstance(owner, str) else None

    async def add_feedback(self, request_id: str, author: str, feedback: dict[str, Any]) -> None:
        """Store feedback; its comment and correction are masked with capture's recognizers first."""
        assert self.writer is not None
        await self.writer.call(worker.feedback, self.writer.key, request_id, author, feedback)


async def _tee(stream: AsyncIterator[bytes], into: list[bytes]) -> AsyncIterator[bytes]:
    """Pass the upstream's blocks on unchanged, keeping each; closing the tee closes the upstream (a disconnect)."""
    try:
        async for block in stream:
            into.append(block)
            yield block
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()


def _index_of(exchange: Exchange, plugin: object) -> int:
    return next((step.index for step in exchange.chain.steps if step.plugin is plugin), len(exchange.chain.steps))


def _snapshot(response: ApiResponse) -> bytes | None:
    """The answer's JSON bytes as they are now (later steps may edit the body in place: restore PII)."""
    if response.stream is not None or response.status != 200:
        return None
    if response.body is not None:
        return orjson.dumps(response.body)
    return response.raw


def _draft_source(exchange: Exchange) -> str:
    messages = exchange.request.messages
    last = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
    if isinstance(last, str) and last.startswith(SCHEMA_REPAIR_MARK):
        return "schema_repair"
    if isinstance(last, str) and last.startswith(JUDGE_REFINE_MARK):
        return "judge_refine"
    return "retry"


def _status(exchange: Exchange) -> int:
    if exchange.error is not None:
        return int(getattr(exchange.error, "status", 500))
    return exchange.response.status if exchange.response is not None else 500


def _meta(exchange: Exchange, status: int, tags: list[str], drafts: list[tuple[str, bytes]],
          digest: str | None) -> dict[str, Any]:  # fmt: skip
    usage = exchange.usage
    attempts: list[dict[str, Any]] = [
        {"backend": a.backend, "model": a.model, "status": a.status, "error": a.error,
         "ms": round(((a.ended or a.started) - a.started) * 1000, 3)}
        for a in exchange.attempts
    ]  # fmt: skip
    events = {source for source, _ in drafts}
    failed = [a for a in attempts[:-1] if a["error"] or (a["status"] or 0) >= 400]  # an attempt followed by another
    if failed:
        events.add("fallback" if any(a["backend"] != attempts[-1]["backend"] for a in failed) else "retry")
    return {
        "request_id": exchange.request_id, "ts": time.time(), "endpoint": exchange.request.endpoint,
        "model": exchange.request.model, "response_model": exchange.response_model,
        "backend": attempts[-1]["backend"] if attempts else exchange.route.backend,
        "key": exchange.caller.name or OPEN_KEY, "status": status,
        "error_code": getattr(exchange.error, "code", None) if exchange.error is not None else None,
        "latency_ms": round((time.monotonic() - exchange.started) * 1000, 3),
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "tags": tags, "verdicts": dict(exchange.verdicts), "events": sorted(events), "attempts": attempts,
        "policy_digest": digest, "schema": SCHEMA_VERSION,
    }  # fmt: skip


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    register(Capture)
