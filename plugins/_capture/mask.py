"""Turn what the capture plugin snapshotted into store rows, with every text PII-masked (runs in the writer thread).

Two sources of masking, per record:
- the chain's ``pii`` step: its ``(original, placeholder)`` pairs replace any original that came back into
  a captured text (an answer the ``pii`` step restored before capture saw it), so the store carries the same
  ``<EMAIL_ADDRESS_1>`` placeholders the model saw;
- capture's own detector (the ``pii`` plugin's recognizers, ``plugins._pii.detect``) when the chain has no
  ``pii`` step before capture, or ``mask: always``: findings become placeholders of one map per record,
  so the request and the answer share them.
Only whitelisted request fields are kept (the conversation, tools, formats, sampling knobs): anything else a
client sends (``user``, ``metadata``…) never reaches the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from plugins._pii.restore import PlaceholderMap, Span
from proxy import ApiRequest
from proxy.answershapes import assemble
from proxy.sse import decode_data, split_events
from proxy.textview import TextRef, request_texts, response_texts

if TYPE_CHECKING:
    from plugins._pii.detect import PiiDetector

KEPT_FIELDS = frozenset({
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "response_format", "temperature", "top_p",
    "max_tokens", "max_completion_tokens", "max_output_tokens", "stop", "seed", "n", "prompt", "input",
    "instructions", "system", "text", "functions", "function_call",
})  # fmt: skip
_MESSAGE_FIELDS = frozenset({"role", "content", "tool_calls", "tool_call_id", "name", "refusal", "function_call"})


@dataclass(slots=True)
class Pending:
    """One finished exchange as snapshotted on the event loop: metadata plus serialised, unmasked bodies."""

    meta: dict[str, Any]
    endpoint: str
    request: bytes | None = None
    answer: bytes | None = None
    chunks: list[bytes] | None = None  # a stream's raw SSE blocks
    drafts: list[tuple[str, bytes]] = field(default_factory=list)
    pairs: list[tuple[str, str]] = field(default_factory=list)  # (original, placeholder) from the pii step
    own: bool = True  # run capture's own detector on the texts
    text: bool = True  # retention full; False: metadata only


def answer_message(endpoint: str, body: dict[str, Any] | None) -> dict[str, Any] | None:
    """The first choice of an answer as a chat ``assistant`` message (other endpoints: their text)."""
    if not isinstance(body, dict):
        return None
    if endpoint == "chat":
        choices = body.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            message = choices[0].get("message")
            if isinstance(message, dict):
                kept = {k: v for k, v in message.items() if k in _MESSAGE_FIELDS and v is not None}
                kept.setdefault("role", "assistant")
                kept.setdefault("content", None)
                return kept
        return None
    texts = [ref.text for ref in response_texts(endpoint, body) if ref.kind == "content"]
    return {"role": "assistant", "content": "".join(texts)} if texts else None


def _request_body(raw: bytes) -> dict[str, Any]:
    body = orjson.loads(raw)
    if not isinstance(body, dict):
        return {}
    kept = {k: v for k, v in body.items() if k in KEPT_FIELDS}
    if isinstance(kept.get("messages"), list):
        kept["messages"] = [
            {k: v for k, v in m.items() if k in _MESSAGE_FIELDS} if isinstance(m, dict) else m for m in kept["messages"]
        ]
    return kept


def _message_refs(message: dict[str, Any] | None) -> list[TextRef]:
    return response_texts("chat", {"choices": [{"message": message}]}) if message is not None else []


class Masker:
    """Builds store rows from ``Pending`` records; ``detector`` is the pii plugin's detector (built lazily)."""

    def __init__(self, detector: PiiDetector | None) -> None:
        self.detector = detector

    def row(self, pending: Pending) -> dict[str, Any]:
        row = dict(pending.meta)
        row.update(request=None, answer=None, drafts=None, masked_by="none")
        if not pending.text:
            return row
        request = _request_body(pending.request) if pending.request else None
        answer_body = orjson.loads(pending.answer) if pending.answer else None
        if answer_body is None and pending.chunks:
            events = [decode_data(e) for e in split_events(b"".join(pending.chunks))]
            answer_body = assemble(pending.endpoint, [e for e in events if e is not None])
        answer = answer_message(pending.endpoint, answer_body)
        drafts: list[dict[str, Any]] = [
            {"source": source, "message": msg}
            for source, raw in pending.drafts
            if raw and (msg := answer_message(pending.endpoint, orjson.loads(raw))) is not None
        ]
        refs: list[TextRef] = []
        if request is not None:
            refs += request_texts(ApiRequest(pending.endpoint, "", request))
        refs += _message_refs(answer)
        for draft in drafts:
            refs += _message_refs(draft["message"])
        row["masked_by"] = self.mask(refs, pending.pairs, own=pending.own)
        row.update(request=request, answer=answer, drafts=drafts)
        return row

    def mask(self, refs: Sequence[TextRef], pairs: Sequence[tuple[str, str]], *, own: bool) -> str:
        """Mask every text in place; says who masked: "pii", "capture", "pii+capture" or "none"."""
        by = []
        if pairs:
            ordered = sorted(pairs, key=lambda pair: -len(pair[0]))
            for ref in refs:
                text = ref.text
                for original, placeholder in ordered:
                    if original and original in text:
                        text = text.replace(original, placeholder)
                if text != ref.text:
                    ref.set(text)
            by.append("pii")
        if own:
            if self.detector is None:
                raise RuntimeError("capture: no PII detector configured, refusing to store unmasked text")
            self._detect(refs)
            by.append("capture")
        return "+".join(by) or "none"

    def _detect(self, refs: Sequence[TextRef]) -> None:
        assert self.detector is not None
        texts = [ref.text for ref in refs]
        mapping = PlaceholderMap(texts)
        for ref in refs:
            findings = self.detector.analyze(ref.text)
            if findings:
                spans = [Span(f.entity, f.start, f.end, "pseudonymize") for f in findings]
                ref.set(mapping.apply(ref.text, spans))

    def mask_free_text(self, texts: list[str]) -> list[str]:
        """Mask texts that no pii step saw (feedback comments and corrections)."""
        holders = [[text] for text in texts]
        refs = [TextRef(t, "user", "content", "user", (), False, h, 0) for t, h in zip(texts, holders, strict=True)]
        self.mask(refs, (), own=True)
        return [h[0] for h in holders]
