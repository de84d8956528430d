"""Sub-calls: a plugin asks another model route of the policy for an answer (judge, repair, llm_check).

The call goes through that route's backend, then its ``fallback`` routes in order, inside the
calling request's deadline (and the caller's own ``timeout_s``, when shorter). It does not run the
caller's chain again. Its tokens are added to the request's accounting in ``exchange.subcalls``,
so cost and budget plugins count them. Plugins never construct backend clients: they call
``await exchange.subcall(model, body)``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.errors import ChaperoneError, UpstreamError, UpstreamTimeout
from proxy.exchange import OWN_LOOP, ApiRequest, Exchange, Usage

if TYPE_CHECKING:
    from proxy.chain import Terminal


@dataclass(slots=True)
class SubcallRecord:
    """One sub-call's outcome, kept on the calling exchange for accounting and traces."""

    model: str
    backend: str | None
    usage: Usage | None
    started: float
    ended: float
    error: str | None = None


class SubcallFailed(ChaperoneError):
    """A sub-call named a model the policy does not route (a policy mistake, not the client's)."""

    code = "subcall_failed"


class Subcaller:
    """Bound once per active policy to its terminal (the innermost upstream call)."""

    __slots__ = ("terminal",)

    def __init__(self, terminal: Terminal) -> None:
        self.terminal = terminal

    async def __call__(
        self, exchange: Exchange, model: str, body: dict[str, Any], timeout_s: float | None
    ) -> dict[str, Any]:
        policy = exchange.policy
        route = policy.routes.get(model) or policy.routes.get("*")
        if route is None:
            raise SubcallFailed(f"a plugin asked for model {model!r}, which this policy does not route")
        deadline = exchange.deadline if timeout_s is None else min(exchange.deadline, time.monotonic() + timeout_s)
        request_body = {**body, "model": model, "stream": False}
        request_body.pop("stream_options", None)
        routes = [route, *(policy.routes[name] for name in route.fallback if name in policy.routes)]
        last: UpstreamError | None = None
        for candidate in routes:
            if time.monotonic() >= deadline:
                break
            child = Exchange(
                request_id=f"{exchange.request_id}.sub{len(exchange.subcalls) + 1}",
                policy=policy,
                chain=exchange.chain,
                route=candidate,
                request=ApiRequest("chat", "/chat/completions", dict(request_body)),
                caller=exchange.caller,
                deadline=deadline,
            )
            child.stash[OWN_LOOP] = True  # [reliability] this loop walks the fallbacks: one attempt per route
            started = time.monotonic()
            try:
                response = await self.terminal(child)
                answer = response.json() if response.body is None else response.body
            except UpstreamError as exc:
                exchange.subcalls.append(
                    SubcallRecord(model, candidate.backend, None, started, time.monotonic(), exc.code or "error")
                )
                last = exc
                continue
            except ValueError:
                last = UpstreamError(f"sub-call to {model!r} returned a body that is not JSON", code="subcall_bad_json")
                continue
            usage = Usage.from_openai(answer.get("usage"))
            exchange.subcalls.append(SubcallRecord(model, candidate.backend, usage, started, time.monotonic()))
            return answer
        if last is None:
            raise UpstreamTimeout(f"no time left in the request's deadline for a sub-call to {model!r}")
        raise last
