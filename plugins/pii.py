"""Find personal data and secrets in every text the model will read; mask them, and restore pseudonyms in the answer.

Detection is ``plugins._pii.detect`` (presidio, offline, off the event loop); placeholders and their
restoration, whole or streamed, are ``plugins._pii.restore``. The mapping from placeholders to
originals lives only in the request's stash and dies with it: no original value is logged, cached,
traced or sent upstream.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from plugins._pii.config import DetectorConfig
from plugins._pii.restore import PlaceholderMap, Span, StreamRestorer
from proxy import ApiRequest, ApiResponse, Exchange, PluginRegistry, PolicyViolation, StashKey, hookimpl
from proxy.requestlog import note as step_note  # [console]
from proxy.textview import (
    StreamKey,
    TextRef,
    append_text,
    chunk_ends,
    chunk_texts,
    delta_chunk,
    key_matches,
    request_texts,
    response_texts,
)

if TYPE_CHECKING:
    from plugins._pii.detect import Finding

log = logging.getLogger(__name__)

Mode = Literal["pseudonymize", "mask", "redact", "block"]


class PiiConfig(DetectorConfig):
    """The detector's settings (entities, tiers, recognizers, thresholds, allow/deny lists) plus what to do."""

    mode: Mode = Field(default="pseudonymize", description="What to do with a finding whose type has no own mode.")
    modes: dict[str, Mode] = Field(
        default_factory=dict, description="Per entity type: pseudonymize, mask, redact or block (400 pii_detected)."
    )
    on_error: Literal["block", "allow"] = Field(
        default="block", description="When detection itself fails: refuse the request (block) or let it pass."
    )
    header: bool = Field(default=True, description="Report masked entity types and counts in x-chaperone-pii.")

    @field_validator("modes")
    @classmethod
    def _upper(cls, modes: dict[str, Mode]) -> dict[str, Mode]:
        return {entity.upper(): mode for entity, mode in modes.items()}


@dataclass(slots=True)
class _State:
    """One request's placeholders and, for a stream, one restorer per growing text."""

    mapping: PlaceholderMap
    json_content: bool  # JSON mode: restored values in the answer's content are JSON-escaped
    counts: dict[str, int]
    restorers: dict[StreamKey, StreamRestorer] = field(default_factory=dict)
    last: dict[StreamKey, dict[str, Any]] = field(default_factory=dict)  # the last chunk that extended each text


STATE = StashKey[_State]()


class Pii:
    name = "pii"
    Config = PiiConfig

    def __init__(self, config: PiiConfig) -> None:
        from plugins._pii.detect import PiiDetector  # presidio costs ~0.8 s to import: only for policies that use pii

        self.config = config
        self.detector = PiiDetector(config)
        self._modes = config.modes
        self._default = config.mode

    @hookimpl
    async def on_startup(self) -> None:
        await self.detector.start()

    # ---- request --------------------------------------------------------------------------

    async def _find(self, exchange: Exchange | None, texts: list[str]) -> list[list[Finding]] | None:
        try:
            return await self.detector.analyze_many(texts)
        except Exception:  # the policy's on_error decides, as the plugin contract asks
            request_id = exchange.request_id if exchange else "-"
            log.exception("PII detection failed (request_id=%s, on_error=%s)", request_id, self.config.on_error)
            if self.config.on_error == "block":
                raise PolicyViolation(
                    "The request could not be checked for personal data, so it was not sent.", code="pii_check_failed"
                ) from None
            return None

    def _mode(self, entity: str, endpoint: str) -> str:
        mode = self._modes.get(entity, self._default)
        if mode == "pseudonymize" and endpoint == "embeddings":  # nothing comes back to restore
            return "mask"
        return mode

    @hookimpl
    async def on_request(self, exchange: Exchange) -> ApiResponse | None:
        request = exchange.request
        refs = request_texts(request)
        if not refs:
            return None
        texts = [ref.text for ref in refs]
        found = await self._find(exchange, texts)
        if not found or not any(found):
            return None
        endpoint = request.endpoint
        blocked = sorted({f.entity for fs in found for f in fs if self._mode(f.entity, endpoint) == "block"})
        if blocked:
            log.info("request blocked for PII types %s (request_id=%s)", ",".join(blocked), exchange.request_id)
            exchange.verdicts[self.name] = "blocked"  # [console] the request log's guard verdicts
            step_note(exchange, self.name, ",".join(blocked))
            raise PolicyViolation(
                f"The request contains personal data this gateway does not let through: {', '.join(blocked)}.",
                code="pii_detected",
            )
        mapping = PlaceholderMap(texts)
        for ref, findings in zip(refs, found, strict=True):
            if findings:
                spans = [Span(f.entity, f.start, f.end, self._mode(f.entity, endpoint)) for f in findings]
                ref.set(mapping.apply(ref.text, spans))
        counts = mapping.entity_counts()
        log.debug("masked PII %s (request_id=%s)", counts, exchange.request_id)
        exchange.stash[STATE] = _State(mapping, _json_mode(request), counts)
        exchange.verdicts[self.name] = "masked"  # [console] types and counts only, never the values
        note = ",".join(f"{k}={v}" for k, v in sorted(counts.items()))
        step_note(exchange, self.name, note)
        return None

    # ---- answer ---------------------------------------------------------------------------

    @hookimpl
    async def on_response(self, exchange: Exchange) -> None:
        state = exchange.stash.get(STATE)
        response = exchange.response
        if response is not None and response.stream is not None and (state is None or not len(state.mapping)):
            exchange.skip_stream_hooks(self)  # nothing to restore: let the stream pass unparsed
        if state is None or response is None:
            return
        if self.config.header:
            response.headers["x-chaperone-pii"] = ",".join(f"{k}={v}" for k, v in sorted(state.counts.items()))
        if response.stream is not None or not len(state.mapping) or response.status >= 400:
            return
        try:
            body = response.json()
        except ValueError:  # not JSON: nothing this plugin can restore, and the client gets it as it came
            return
        for ref in response_texts(exchange.request.endpoint, body):
            ref.set(state.mapping.restore(ref.text, json_escape=ref.json or state.json_content))

    @hookimpl
    async def on_chunk(self, exchange: Exchange, chunk: dict[str, Any]) -> dict[str, Any] | list[dict[str, Any]] | None:
        state = exchange.stash.get(STATE)
        if state is None or not len(state.mapping):
            return chunk
        endpoint = exchange.request.endpoint
        for ref in chunk_texts(endpoint, chunk):
            if ref.stream_key is None:  # a whole text (a *.done event, the completed response)
                ref.set(state.mapping.restore(ref.text, json_escape=ref.json or state.json_content))
            else:
                state.last[ref.stream_key] = chunk
                ref.set(self._restorer(state, ref).feed(ref.text))
        if not state.restorers:
            return chunk
        ends = chunk_ends(endpoint, chunk)
        if not ends:
            return chunk
        before: list[dict[str, Any]] = []  # held text released ahead of the event that ends it
        for key, restorer in state.restorers.items():
            if restorer.pending and key_matches(key, ends):
                text = restorer.flush()
                if not append_text(endpoint, chunk, key, text):
                    before.append(delta_chunk(endpoint, key, text, state.last.get(key, chunk)))
        return [*before, chunk] if before else chunk

    @hookimpl
    async def on_stream_end(self, exchange: Exchange) -> list[dict[str, Any]] | None:
        state = exchange.stash.get(STATE)
        if state is None:
            return None
        endpoint = exchange.request.endpoint
        out = [
            delta_chunk(endpoint, key, restorer.flush(), state.last.get(key, {}))
            for key, restorer in state.restorers.items()
            if restorer.pending
        ]
        return out or None

    @staticmethod
    def _restorer(state: _State, ref: TextRef) -> StreamRestorer:
        key = ref.stream_key or (0, ref.kind, None)
        restorer = state.restorers.get(key)
        if restorer is None:
            restorer = state.restorers[key] = state.mapping.restorer(json_escape=ref.json or state.json_content)
        return restorer

    # ---- dry run --------------------------------------------------------------------------

    async def scan(self, request: ApiRequest) -> dict[str, Any] | None:
        """What this step would find and do for ``request`` (``chaperone scan``); changes nothing."""
        refs = request_texts(request)
        found = await self._find(None, [ref.text for ref in refs]) if refs else []
        entities: list[dict[str, Any]] = [
            {"type": f.entity, "start": f.start, "end": f.end, "score": round(f.score, 3), "path": list(ref.path),
             "mode": self._mode(f.entity, request.endpoint)}
            for ref, findings in zip(refs, found or [], strict=False)
            for f in findings
        ]  # fmt: skip
        modes = {str(e["mode"]) for e in entities}
        action = "block" if "block" in modes else ("+".join(sorted(modes)) if modes else None)
        return {"entities": entities, "action": action}


def _json_mode(request: ApiRequest) -> bool:
    """Whether the answer's text is JSON (chat ``response_format``, Responses ``text.format``)."""
    fmt = request.body.get("response_format")
    if fmt is None and isinstance(text := request.body.get("text"), dict):
        fmt = text.get("format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    register(Pii)
