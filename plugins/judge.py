"""Re-check an answer with a judge model before the client sees it; refine, fall back, block or flag on a fail.

The judge is any model route of the policy, asked through a sub-call (its tokens are added to the
request's cost and budget) with a prompt template (default: grounded in the request's context? answers
the question? violates the policy text?) for a JSON verdict ``{"pass", "score", "reasons"}``, read
robustly from small local judges. A verdict below ``threshold`` fails; then, per ``action``: ``refine``
re-asks the original model with the critique (``max_rounds``) and judges again, ``fallback`` asks
``fallback_model`` instead, ``block`` answers 502 ``judge_rejected``, ``flag`` passes the answer with
``x-chaperone-judge: fail`` (reasons logged). ``sample`` judges that share of traffic; ``max_judge_tokens``
caps the judge's tokens per request; a judge that times out or fails lets the answer through
(``on_error: allow``) or refuses it (``block``, 502 ``judge_unavailable``). ``mode: audit`` streams live and
judges after the answer went out.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from plugins._judge.prompt import DEFAULT_PROMPT, fill, judge_body, question_and_context
from plugins._judge.verdict import Verdict, read_verdict
from plugins._schema.answer import answer_texts
from plugins._schema.repair import Saved, account_discarded, add_repair
from proxy import ApiResponse, CallNext, Exchange, PluginRegistry, ResponseRejected, StashKey, UpstreamError, hookimpl
from proxy.answershapes import assemble

log = logging.getLogger(__name__)
CHUNKS = StashKey[list[dict[str, Any]]]()  # audit mode: the stream's chunks
ASKED = StashKey[tuple[str, str]]()  # the question and context as the client sent them (before later steps edit)
SCORES = StashKey[list[float]]()  # [loop] every verdict's score on this request, in order (the capture plugin reads it)
_HEADER = "x-chaperone-judge"


class JudgeConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field(description="The policy's model route that judges (a sub-call).")
    mode: Literal["enforce", "audit"] = Field(
        default="enforce", description="enforce: judge before the client sees the answer; audit: afterwards."
    )
    prompt: str = Field(default=DEFAULT_PROMPT, description="Template with $question, $context, $answer, $policy.")
    policy_text: str = Field(default="", description="Rules the answer must respect, shown to the judge as $policy.")
    context_roles: frozenset[str] = Field(
        default=frozenset({"system", "developer", "tool"}),
        description="Request roles whose texts are the context ($context) the answer must be grounded in.",
    )
    json_mode: Literal["schema", "object", "none"] = Field(
        default="schema", description="How the judge is asked for JSON: a json_schema, json_object, or the prompt only."
    )
    threshold: float = Field(default=0.5, ge=0, le=1, description="Scores below this fail.")
    action: Literal["refine", "fallback", "block", "flag"] = Field(default="flag", description="What a fail does.")
    max_rounds: int = Field(default=1, ge=1, le=5, description="refine: re-asks of the original model at most.")
    final: Literal["flag", "block"] = Field(
        default="flag", description="refine / fallback: what a fail does once the rounds or the fallback are spent."
    )
    fallback_model: str | None = Field(default=None, description="fallback: the model route asked instead.")
    sample: float = Field(default=1.0, ge=0, le=1, description="Share of requests judged (by request id).")
    timeout_s: float = Field(default=10.0, gt=0, description="Time the judge gets per verdict.")
    on_error: Literal["allow", "block"] = Field(
        default="allow", description="A judge that times out or fails: let the answer through, or refuse it."
    )
    max_judge_tokens: int = Field(default=8000, ge=1, description="Judge tokens per request; then no more verdicts.")
    max_tokens: int = Field(default=300, ge=1, description="The judge's own max_tokens per verdict.")
    max_chars: int = Field(default=12000, ge=100, description="Question, context and answer are cut to this length.")

    @model_validator(mode="after")
    def _fallback_named(self) -> JudgeConfig:
        if self.action == "fallback" and not self.fallback_model:
            raise ValueError("action 'fallback' needs fallback_model")
        return self


class JudgeRejected(ResponseRejected):
    code = "judge_rejected"


class JudgeUnavailable(ResponseRejected):
    code = "judge_unavailable"


class _NoVerdict(Exception):
    """The judge gave no usable verdict (timeout, upstream failure, unreadable reply, token cap)."""


class Judge:
    name = "judge"
    Config = JudgeConfig
    buffers_response = True

    def __init__(self, config: JudgeConfig) -> None:
        self.config = config
        self.buffers_response = config.mode == "enforce"
        self._cutoff = int(config.sample * 0xFFFFFFFF)

    def sampled(self, request_id: str) -> bool:
        """Whether this request is judged: a stable hash of its id under the sampling rate."""
        return self.config.sample >= 1 or zlib.crc32(request_id.encode()) < self._cutoff

    @hookimpl
    async def on_request(self, exchange: Exchange) -> None:
        """Read the question and context now, before later steps add their own instructions or turns."""
        if self.sampled(exchange.request_id):
            exchange.stash[ASKED] = question_and_context(exchange.request, self.config.context_roles)

    @hookimpl
    async def wrap_call(self, exchange: Exchange, call_next: CallNext) -> ApiResponse:
        response = await call_next(exchange)
        if not self.buffers_response or not self.sampled(exchange.request_id):
            return response
        saved = Saved.of(exchange.request)
        try:
            return await self._enforce(exchange, call_next, response)
        finally:
            saved.restore(exchange.request)

    async def _enforce(self, exchange: Exchange, call_next: CallNext, response: ApiResponse) -> ApiResponse:
        rounds = 0
        how = "pass"
        while response.stream is None and response.status == 200:
            try:
                verdict = await self.verdict(exchange, response.json())
            except _NoVerdict as exc:
                return self._no_verdict(exchange, response, str(exc))
            if verdict.accepts(self.config.threshold):
                return _mark(exchange, response, how)
            reasons = "; ".join(verdict.reasons) or "no reason given"
            log.info("judge: fail (request_id=%s, round %d): %s", exchange.request_id, rounds, reasons[:300])
            action = self.config.action
            if action == "refine" and rounds < self.config.max_rounds:
                rounds, how = rounds + 1, "refined"
                account_discarded(exchange, response.json(), exchange.started)
                add_repair(exchange.request, _text(exchange, response.json()), _critique(verdict))
                response = await call_next(exchange)
                continue
            if action == "fallback" and self.config.fallback_model and rounds == 0:
                rounds, how = self.config.max_rounds + 1, "fallback"  # one fallback answer, judged once more
                fallback = await self._fallback(exchange, response)
                if fallback is not None:
                    response = fallback
                    continue
            if action == "block" or (action != "flag" and self.config.final == "block"):
                exchange.verdicts[self.name] = "rejected"
                raise JudgeRejected(f"The answer was rejected by the judge: {reasons[:500]}")
            response.headers[_HEADER + "-reasons"] = _header_text(reasons)
            return _mark(exchange, response, "fail")
        return response

    async def verdict(self, exchange: Exchange, answer: dict[str, Any]) -> Verdict:
        """Ask the judge route about ``answer``; raises ``_NoVerdict`` when it gives none."""
        config = self.config
        used = exchange.stash.get(_TOKENS) or 0
        if used >= config.max_judge_tokens:
            raise _NoVerdict(f"judge token cap reached ({used} >= {config.max_judge_tokens})")
        question, context = exchange.stash.get(ASKED) or question_and_context(exchange.request, config.context_roles)
        prompt = fill(config.prompt, question=question, context=context, answer=_text(exchange, answer),
                      policy=config.policy_text, limit=config.max_chars)  # fmt: skip
        before = len(exchange.subcalls)
        try:
            reply = await asyncio.wait_for(
                exchange.subcall(config.model, judge_body(prompt, config.json_mode, config.max_tokens),
                                 timeout_s=config.timeout_s), config.timeout_s)  # fmt: skip
        except (UpstreamError, TimeoutError) as exc:
            raise _NoVerdict(f"judge {config.model!r} failed: {getattr(exc, 'message', None) or 'timed out'}") from None
        finally:
            spent = sum(r.usage.total_tokens for r in exchange.subcalls[before:] if r.usage is not None)
            exchange.stash[_TOKENS] = used + spent
        texts = answer_texts("chat", reply)
        verdict = read_verdict(texts[0][1] if texts else "")
        if verdict.passed is None and verdict.score is None:
            raise _NoVerdict("the judge's reply holds no verdict")
        if verdict.score is not None:  # [loop] kept for capture's judge_score
            exchange.stash.setdefault(SCORES, []).append(verdict.score)
        return verdict

    def _no_verdict(self, exchange: Exchange, response: ApiResponse, why: str) -> ApiResponse:
        log.warning("judge: no verdict (request_id=%s): %s", exchange.request_id, why)
        if self.config.on_error == "block":
            exchange.verdicts[self.name] = "unavailable"
            raise JudgeUnavailable(f"The answer could not be checked: {why}")
        return _mark(exchange, response, "error")

    async def _fallback(self, exchange: Exchange, response: ApiResponse) -> ApiResponse | None:
        """The fallback model's answer to the request, or None (not a chat request, or the fallback failed)."""
        model = self.config.fallback_model
        assert model is not None
        if exchange.request.endpoint != "chat":  # sub-calls speak chat; other endpoints keep their answer
            return None
        body = {k: v for k, v in exchange.request.body.items() if k not in ("model", "stream", "stream_options")}
        try:
            answer = await exchange.subcall(model, body)
        except UpstreamError as exc:
            log.warning("judge: fallback %r failed (request_id=%s): %s", model, exchange.request_id, exc.message)
            return None
        account_discarded(exchange, response.json(), exchange.started)
        return ApiResponse(200, body=answer, headers=dict(response.headers), source=self.name)

    @hookimpl
    async def on_response(self, exchange: Exchange) -> None:
        response = exchange.response
        if (
            response is not None
            and response.stream is not None
            and (self.buffers_response or not self.sampled(exchange.request_id))
        ):
            exchange.skip_stream_hooks(self)

    @hookimpl
    async def on_chunk(self, exchange: Exchange, chunk: dict[str, Any]) -> dict[str, Any]:
        exchange.stash.setdefault(CHUNKS, []).append(chunk)
        return chunk

    @hookimpl
    async def on_complete(self, exchange: Exchange) -> None:
        """Audit mode: judge the answer that went out; the verdict goes to the logs and metrics only."""
        response = exchange.response
        if self.buffers_response or response is None or exchange.error is not None:
            return
        if response.status != 200 or not self.sampled(exchange.request_id):
            return
        chunks = exchange.stash.get(CHUNKS)
        answer = response.json() if response.stream is None else assemble(exchange.request.endpoint, chunks or [])
        if answer is None:
            return
        try:
            verdict = await self.verdict(exchange, answer)
        except _NoVerdict as exc:
            exchange.verdicts[self.name] = "audit_error"
            log.warning("judge audit: no verdict (request_id=%s): %s", exchange.request_id, exc)
            return
        passed = verdict.accepts(self.config.threshold)
        exchange.verdicts[self.name] = "audit_pass" if passed else "audit_fail"
        if not passed:
            log.warning("judge audit: fail (request_id=%s): %s", exchange.request_id, "; ".join(verdict.reasons)[:300])


_TOKENS = StashKey[int]()


def _text(exchange: Exchange, answer: dict[str, Any]) -> str:
    return "\n".join(text for _, text in answer_texts(exchange.request.endpoint, answer))


def _critique(verdict: Verdict) -> str:
    reasons = "\n".join(f"- {reason}" for reason in verdict.reasons) or "- (no reasons given)"
    return (
        "A reviewer checked your answer and found problems:\n" + reasons + "\n"
        "Write the answer again, fixing them. Use only facts from the context you were given."
    )


def _mark(exchange: Exchange, response: ApiResponse, verdict: str) -> ApiResponse:
    response.headers[_HEADER] = verdict
    exchange.verdicts["judge"] = verdict
    return response


def _header_text(text: str) -> str:
    return text.encode("ascii", "replace").decode()[:500].replace("\r", " ").replace("\n", " ")


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    register(Judge)
