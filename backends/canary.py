"""Model routes with several targets: canary / A-B splits, and spreading a route over several backends.

``split:`` gives a route variants (a backend and/or an upstream model each) that share its traffic by
weight. A request's variant comes from a hash of who sent it (the ``user`` field, else the API key;
or the key only; or nothing: each request on its own), the route's name and nothing else, so a user
stays on one variant across requests, proxy replicas and restarts, and raising a canary's weight only
moves users onto it (list the canary last). Rolling back is a policy edit (hot reload). The chosen
variant is in ``x-chaperone-variant``, the access log's verdicts (``variant``) and the trace
(``chaperone.variant``).

``balance:`` on a route whose ``backend`` is a list spreads requests over the enabled backends with a
``backends.balancer`` strategy (each backend may itself be a pool of replicas).

The router calls ``Split.send`` once per attempt; the variant's route is in force for that attempt
only, so a retry picks again (the same variant when sticky, another backend when spreading).
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from opentelemetry import trace

from backends.balancer import Balancer
from backends.pool import TRIED, is_failure, track_stream
from proxy.errors import ChaperoneError
from proxy.exchange import ApiResponse, Exchange

if TYPE_CHECKING:
    from proxy.policy import Route
    from proxy.splits import SplitSpec

VARIANT_HEADER = "x-chaperone-variant"
Call = Callable[[Exchange], Awaitable[ApiResponse]]


class Split:
    """A route's targets and how one is picked: a sticky weighted hash (canary) or a balancer (spread)."""

    def __init__(
        self,
        name: str,
        variants: tuple[Route, ...],
        weights: tuple[float, ...] = (),
        sticky: str = "user",
        balancer: Balancer | None = None,
    ) -> None:
        self.name = name
        self.variants = variants
        self.sticky = sticky
        self.balancer = balancer
        total = sum(weights)
        self._edges = [edge / total for edge in itertools.accumulate(weights)] if total > 0 else []
        self._key = f"split:{name}"

    def backends(self) -> set[str]:
        return {variant.backend for variant in self.variants}

    def identity(self, exchange: Exchange) -> str:
        """What the variant is sticky to (hashed, never stored)."""
        if self.sticky == "user":
            user = exchange.request.body.get("user")
            if isinstance(user, str) and user:
                return f"user:{user}"
        if self.sticky != "none":
            caller = exchange.caller
            key = caller.key_id or caller.name or caller.authorization
            if key:
                return f"key:{key}"
        return f"request:{exchange.request_id}"

    def point(self, identity: str) -> float:
        """Where ``identity`` falls in [0, 1): the same on every replica and after every restart."""
        digest = hashlib.blake2b(f"{self.name}\0{identity}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") / 2**64

    def pick(self, exchange: Exchange) -> int:
        if self.balancer is not None:
            tried = exchange.stash.get(TRIED)
            exclude = {i for name, i in tried if name == self._key} if tried else set()
            return self.balancer.pick(exclude if len(exclude) < len(self.variants) else ())
        index = bisect.bisect_right(self._edges, self.point(self.identity(exchange)))
        return min(index, len(self.variants) - 1)

    async def send(self, exchange: Exchange, call: Call) -> ApiResponse:
        """One attempt on this request's variant (``call`` is the router's attempt, given the variant route)."""
        i = self.pick(exchange)
        variant = self.variants[i]
        label = variant.variant
        if label is not None:
            exchange.verdicts["variant"] = label
            span = trace.get_current_span()
            if span.is_recording():
                span.set_attribute("chaperone.variant", label)
        balancer = self.balancer
        if balancer is not None:
            exchange.stash.setdefault(TRIED, set()).add((self._key, i))
            balancer.begin(i)
        parent, exchange.route = exchange.route, variant
        try:
            response = await call(exchange)
        except BaseException as exc:
            if label is not None and isinstance(exc, ChaperoneError):
                exc.extra_headers[VARIANT_HEADER] = label
            if balancer is not None:
                balancer.finish(i)
                if is_failure(exc):
                    balancer.failed(i)
            raise
        finally:
            exchange.route = parent
        if label is not None:
            response.headers[VARIANT_HEADER] = label
        if balancer is not None:
            balancer.succeeded(i, _latency(exchange))
            if response.stream is None:
                balancer.finish(i)
            else:
                response.stream = track_stream(balancer, i, response.stream)
        return response


def _latency(exchange: Exchange) -> float | None:
    """The last attempt's duration, when it is over (a stream's is not yet)."""
    attempt = exchange.attempts[-1] if exchange.attempts else None
    return None if attempt is None or attempt.ended is None else attempt.ended - attempt.started


def from_spec(spec: SplitSpec) -> Split:
    """The live split of a compiled route (``proxy.splits``): its picker, and a balancer for a spread route."""
    if spec.balance is not None:
        balancer = Balancer([variant.backend for variant in spec.variants], spec.balance)
        return Split(spec.name, spec.variants, balancer=balancer)
    return Split(spec.name, spec.variants, spec.weights, spec.sticky)
