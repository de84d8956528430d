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
from proxy.textview import StreamKey, TextRef, chunk_texts, request_texts, response_texts

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
    template: dict[str, Any] = field(default_factory=dict)  # id/object/created/model of the last chunk


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
    async def on_chunk(self, exchange: Exchange, chunk: dict[str, Any]) -> dict[str, Any] | None:
        state = exchange.stash.get(STATE)
        if state is None or not len(state.mapping):
            return chunk
        for name in ("id", "object", "created", "model"):
            if name in chunk:
                state.template[name] = chunk[name]
        for ref in chunk_texts(exchange.request.endpoint, chunk):
            ref.set(self._restorer(state, ref).feed(ref.text))
        choices = chunk.get("choices")
        if isinstance(choices, list) and state.restorers:
            for choice in choices:
                if isinstance(choice, dict) and choice.get("finish_reason") and isinstance(choice.get("index"), int):
                    for key, restorer in state.restorers.items():
                        if key[0] == choice["index"] and restorer.pending:
                            _append(choice, key, restorer.flush(), exchange.request.endpoint)
        return chunk

    @hookimpl
    async def on_stream_end(self, exchange: Exchange) -> list[dict[str, Any]] | None:
        state = exchange.stash.get(STATE)
        if state is None:
            return None
        by_choice: dict[int, dict[str, Any]] = {}
        endpoint = exchange.request.endpoint
        for key, restorer in state.restorers.items():
            if restorer.pending:
                choice = by_choice.setdefault(key[0], _empty_choice(key[0], endpoint))
                _append(choice, key, restorer.flush(), endpoint)
        if not by_choice:
            return None
        return [{**state.template, "choices": list(by_choice.values())}]

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
    fmt = request.body.get("response_format")
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


def _empty_choice(index: int, endpoint: str) -> dict[str, Any]:
    if endpoint == "completions":
        return {"index": index, "text": "", "finish_reason": None}
    return {"index": index, "delta": {}, "finish_reason": None}


def _append(choice: dict[str, Any], key: StreamKey, text: str, endpoint: str) -> None:
    """Add released text to a chunk's choice, after whatever piece of the same text it already carries."""
    if not text:
        return
    _, kind, tool_index = key
    if endpoint == "completions":
        choice["text"] = (choice.get("text") or "") + text
        return
    delta = choice.setdefault("delta", {})
    if kind in ("content", "refusal"):
        delta[kind] = (delta.get(kind) or "") + text
    elif kind == "function_arguments":
        call = delta.setdefault("function_call", {})
        call["arguments"] = (call.get("arguments") or "") + text
    else:
        calls = delta.setdefault("tool_calls", [])
        entry = next((c for c in calls if isinstance(c, dict) and c.get("index") == tool_index), None)
        if entry is None:
            entry = {"index": tool_index, "function": {"arguments": ""}}
            calls.append(entry)
        function = entry.setdefault("function", {})
        function["arguments"] = (function.get("arguments") or "") + text


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    register(Pii)
