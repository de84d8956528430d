"""Context fitting for one request: count, compare with the window, clamp, or apply a strategy."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from plugins._budget import fitting
from plugins._budget.config import BudgetConfig
from plugins._budget.windows import window_for
from proxy import Exchange, InvalidRequest, tokens
from proxy.errors import ChaperoneError

log = logging.getLogger(__name__)

# Where each endpoint names the client's output limit (first present wins).
OUTPUT_FIELDS: dict[str, tuple[str, ...]] = {
    "chat": ("max_completion_tokens", "max_tokens"),
    "completions": ("max_tokens",),
    "responses": ("max_output_tokens",),
    "messages": ("max_tokens",),
    "embeddings": (),
}


# Endpoints whose conversation can be cut, and where it lives.
_CONVERSATIONS = {"chat": "messages", "responses": "input", "messages": "messages"}


@dataclass(slots=True)
class Fit:
    """The outcome: input tokens (after fitting), whether exact, the output limit, what was done."""

    tokens: int
    exact: bool
    max_output: int | None
    verdict: str = "ok"
    note: str = ""
    embeddings: bool = False


def output_limit(endpoint: str, body: dict[str, object]) -> tuple[str | None, int | None]:
    for name in OUTPUT_FIELDS.get(endpoint, ()):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            return name, value
    return None, None


class Fitter:
    """Prebound per policy: the window table and the overflow strategy."""

    def __init__(self, config: BudgetConfig) -> None:
        self.config = config
        self._windows = {k.lower(): v for k, v in config.context_windows.items()}

    def window(self, model: str) -> int | None:
        """The model's context window (input + output), or None when unknown."""
        return window_for(model, self._windows, self.config.default_window)

    def room(self, window: int | None, fit: Fit) -> int | None:
        """Input tokens allowed: the window minus the answer's room, capped by ``max_input_tokens``."""
        limits = (None if window is None else window - self._needed(fit), self.config.max_input_tokens)
        given = [n for n in limits if n is not None]
        return min(given) if given else None

    async def fit(self, exchange: Exchange) -> Fit:
        request = exchange.request
        size = len(request.raw) if request.raw is not None else request.size  # no re-encoding to size it
        counted = await tokens.count_request(request.endpoint, request.body, size=size)
        field, asked = output_limit(request.endpoint, request.body)
        fit = Fit(counted.tokens, counted.exact, asked, embeddings=request.endpoint == "embeddings")
        window = self.window(exchange.route.upstream_model or request.model)
        room = self.room(window, fit)
        if room is None:
            return fit
        if fit.tokens > room:
            await self._overflow(exchange, fit, window, room)
            window = self.window(exchange.route.upstream_model or exchange.request.model)
        if window is not None and field is not None and asked is not None and fit.tokens + asked > window:
            fit.max_output = max(1, window - fit.tokens)
            request.body[field] = fit.max_output
            fit.note += f"; clamped {field}={fit.max_output}"
        return fit

    def _needed(self, fit: Fit) -> int:
        """Output tokens the input must leave room for (none for embeddings, which write nothing)."""
        if fit.embeddings:
            return 0
        if fit.max_output is None:
            return self.config.output_reserve
        return min(fit.max_output, self.config.min_output_tokens)  # the limit itself is clamped to fit

    async def _overflow(self, exchange: Exchange, fit: Fit, window: int | None, room: int) -> None:
        strategy = self.config.on_overflow
        endpoint = exchange.request.endpoint
        if strategy == "fallback":
            if self._fall_back(exchange, fit):
                return
        elif endpoint in _CONVERSATIONS and strategy != "reject":
            if strategy == "summarize" and await self._summarize(exchange, fit, room):
                return
            if await self._drop(exchange, fit, room, middle_out=strategy == "middle_out"):
                return
        fit.verdict = "rejected:context"
        if window is not None and window - self._needed(fit) <= room:
            what = f"This model's maximum context length is {window} tokens"
        else:
            what = f"This gateway allows at most {room} input tokens per request"
        raise InvalidRequest(
            f"{what}. However, your messages resulted in {fit.tokens} tokens, and {self._needed(fit)} more "
            "are needed for the answer. Please reduce the length of the messages.",
            param="messages",
            code="context_length_exceeded",
        )

    async def _drop(self, exchange: Exchange, fit: Fit, room: int, *, middle_out: bool) -> bool:
        request = exchange.request
        body = request.body
        enc = tokens.encoding_for(request.model)[0]
        where = _CONVERSATIONS[request.endpoint]
        messages = body.get(where)
        if not isinstance(messages, list):
            return False
        parts = (fitting.rounds if request.endpoint == "messages" else fitting.units)(enc, messages)
        dropped = fitting.choose_drops(parts, fit.tokens - room, middle_out)
        if dropped is None:
            return False
        body[where] = fitting.without(messages, dropped)
        if request.endpoint == "chat":
            fit.tokens -= sum(u.tokens for u in dropped)
        else:  # unit sizes follow chat's rules: count the result again (a long one on a worker thread)
            fit.tokens = (await tokens.count_request(request.endpoint, body)).tokens
        count = sum(u.stop - u.start for u in dropped)
        fit.verdict = "middle_out" if middle_out else "truncated"
        fit.note += f"; dropped {count} messages"
        return True

    async def _summarize(self, exchange: Exchange, fit: Fit, room: int) -> bool:
        """Replace every turn before the last user turn by a summary from ``summarize_model`` (a sub-call).

        Chat and Responses get the summary as a system message where the old turns were; Anthropic
        Messages, whose turns are only user and assistant, at the end of ``system``.
        """
        request = exchange.request
        endpoint, body = request.endpoint, request.body
        enc = tokens.encoding_for(request.model)[0]
        where = _CONVERSATIONS[endpoint]
        messages = body.get(where)
        if not isinstance(messages, list):
            return False
        parts = (fitting.rounds if endpoint == "messages" else fitting.units)(enc, messages)
        replaced = [u for u in parts if not u.pinned]  # the turns before the last user message, minus system ones
        if not replaced:
            return False
        earlier = [m for u in replaced for m in messages[u.start : u.stop]]
        summary_request = fitting.summary_request(earlier, self.config.summary_max_tokens)
        try:
            answer = await exchange.subcall(str(self.config.summarize_model), summary_request)
        except ChaperoneError as exc:
            log.warning("summary sub-call failed (request_id=%s): %s", exchange.request_id, exc.message)
            return False
        text = fitting.summary_text(answer)
        if text is None:
            return False
        kept = fitting.without(messages, replaced)
        changed: dict[str, object] = {where: kept}
        if endpoint == "messages":
            changed["system"] = fitting.system_with_summary(body.get("system"), text)
        else:
            kept.insert(replaced[0].start, fitting.summary_message(text))  # nothing before it was removed
        if endpoint == "chat":
            summary = kept[replaced[0].start]
            new_tokens = fit.tokens - sum(u.tokens for u in replaced) + tokens.message_tokens(enc, summary)
        else:  # unit sizes follow chat's rules: count the result again (a long one on a worker thread)
            new_tokens = (await tokens.count_request(endpoint, {**body, **changed})).tokens
        if new_tokens > room:
            return False
        body.update(changed)
        fit.tokens = new_tokens
        fit.verdict = "summarized"
        fit.note += f"; summarized {sum(u.stop - u.start for u in replaced)} messages"
        return True

    def _fall_back(self, exchange: Exchange, fit: Fit) -> bool:
        routes = exchange.policy.routes
        for name in exchange.route.fallback:
            route = routes.get(name)
            if route is None:
                continue
            room = self.room(self.window(route.upstream_model or name), fit)
            if room is not None and fit.tokens <= room:
                exchange.route = route
                exchange.request.body["model"] = name
                fit.verdict = "fallback"
                fit.note += f"; model={name}"
                return True
        return False
