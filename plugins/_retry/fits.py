"""Context-window fallback: which of a request's routes its input (and asked output) fits.

The windows are the budget plugin's table (``plugins._budget.windows``), with the retry config's
``context_windows`` over it; a model neither knows is assumed to fit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from plugins._budget.fit import output_limit
from plugins._budget.windows import window_for
from proxy import tokens

if TYPE_CHECKING:
    from proxy.exchange import Exchange
    from proxy.policy import Route

_CONTEXT_CODES = frozenset({"context_length_exceeded", "string_above_max_length"})
_FILTER_CODES = frozenset({"content_filter", "content_policy_violation", "content_filtered"})


async def fitting(exchange: Exchange, routes: Sequence[Route], overrides: Mapping[str, int]) -> list[Route]:
    """``routes`` unchanged when the primary fits; else the fallbacks that fit, in order (all when none does)."""
    request = exchange.request
    counted = await tokens.count_request(request.endpoint, request.body)
    _, asked = output_limit(request.endpoint, request.body)
    needed = counted.tokens + (asked or 0)

    def fits(route: Route) -> bool:
        window = window_for(route.upstream_model or route.name, overrides)
        return window is None or needed <= window

    if fits(routes[0]):
        return list(routes)
    chosen = [route for route in routes[1:] if fits(route)]
    return chosen or list(routes)  # nothing fits: the primary answers with its own context error


def error_code(body: object) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        code = body["error"].get("code")
        return code if isinstance(code, str) else None
    return None


def context_exceeded(body: object) -> bool:
    """An upstream's 400 saying the input is longer than the model's window."""
    if error_code(body) in _CONTEXT_CODES:
        return True
    message = body["error"].get("message") if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
    return isinstance(message, str) and "maximum context length" in message


def content_refused(body: object) -> bool:
    """An upstream's 400 refusing the request on content grounds."""
    return error_code(body) in _FILTER_CODES


def answer_filtered(body: object) -> bool:
    """A 200 answer whose every choice was cut by the upstream's content filter."""
    choices = body.get("choices") if isinstance(body, dict) else None
    return (
        isinstance(choices, list)
        and bool(choices)
        and all(isinstance(c, dict) and c.get("finish_reason") == "content_filter" for c in choices)
    )
