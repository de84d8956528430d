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
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from opentelemetry import trace

from backends.balancer import Balancer
from backends.pool import TRIED, is_failure, track_stream
from proxy.errors import ChaperoneError
from proxy.exchange import ApiResponse, Exchange

if TYPE_CHECKING:
    from proxy.policy import Route
    from proxy.policyfile import BackendConfig, BalanceConfig, ModelConfig

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


# ---- compiling (called by proxy.policy) ----------------------------------------------------


def backend_names(routes: Iterable[Route]) -> set[str]:
    """Every backend some route (or one of its variants) may send to."""
    names: set[str] = set()
    for route in routes:
        names.add(route.backend)
        if route.split is not None:
            names |= route.split.backends()
    return names


def check_hedge(name: str, targets: Iterable[str], backends: Mapping[str, BackendConfig], errors: list[str]) -> None:
    for backend in targets:
        config = backends.get(backend)
        if config is not None and (config.urls is None or len(config.urls) < 2):
            errors.append(
                f"models.{name}.hedge: backend {backend!r} has a single url; "
                "hedging needs a backend with several 'urls'"
            )


def compile_split(
    name: str, model: ModelConfig, backends: Mapping[str, BackendConfig], errors: list[str]
) -> Route | None:
    """The route of a model with ``split`` or ``balance``; None (and ``errors``) when it cannot be built."""
    from proxy.policy import Route

    fallback = tuple(model.fallback)
    where = f"models.{name}"
    have = ", ".join(backends) or "none"
    if model.balance is not None:
        return _compile_spread(name, model, model.balance, backends, errors)
    assert model.split is not None
    if isinstance(model.backend, list):
        errors.append(f"{where}.backend: with 'split', give one backend name (or one per split entry)")
        return None
    variants: list[Route] = []
    weights: list[float] = []
    ok = True
    for j, entry in enumerate(model.split):
        backend = entry.backend or model.backend
        assert backend is not None
        label = entry.name or entry.model or entry.backend or model.model or backend
        if backend not in backends:
            errors.append(f"{where}.split[{j}].backend: no backend named {backend!r} (have: {have})")
            ok = False
        elif any(v.variant == label for v in variants):
            errors.append(f"{where}.split[{j}].name: the label {label!r} is used twice; give each variant a name")
            ok = False
        upstream = entry.model or model.model
        variants.append(Route(name, backend, upstream, fallback, hedge=model.hedge, variant=label))
        enabled = backend in backends and backends[backend].enabled
        weights.append(entry.weight if enabled else 0.0)
    if not ok:
        return None
    if sum(weights) <= 0:
        errors.append(f"{where}.split: every variant has weight 0 or a disabled backend")
        return None
    if model.hedge is not None:
        check_hedge(name, {v.backend for v in variants}, backends, errors)
    split = Split(name, tuple(variants), tuple(weights), model.sticky)
    primary = variants[next(i for i, w in enumerate(weights) if w > 0)]
    return Route(name, primary.backend, model.model, fallback, split=split, hedge=model.hedge)


def _compile_spread(
    name: str, model: ModelConfig, balance: BalanceConfig, backends: Mapping[str, BackendConfig], errors: list[str]
) -> Route | None:
    from proxy.policy import Route

    where = f"models.{name}"
    listed = [model.backend] if isinstance(model.backend, str) else list(model.backend or [])
    missing = [b for b in listed if b not in backends]
    for i, backend in enumerate(listed):
        if backend in missing:
            errors.append(f"{where}.backend[{i}]: no backend named {backend!r} (have: {', '.join(backends) or 'none'})")
    if balance.weights is not None and len(balance.weights) != len(listed):
        errors.append(f"{where}.balance.weights: {len(balance.weights)} weights for {len(listed)} backends")
        return None
    if missing:
        return None
    chosen = [i for i, backend in enumerate(listed) if backends[backend].enabled]
    if not chosen:
        errors.append(f"{where}.backend: none of {listed} is enabled")
        return None
    if model.hedge is not None:
        check_hedge(name, [listed[i] for i in chosen], backends, errors)
    fallback = tuple(model.fallback)
    variants = tuple(Route(name, listed[i], model.model, fallback, hedge=model.hedge) for i in chosen)
    if balance.weights is not None:
        balance = balance.model_copy(update={"weights": [balance.weights[i] for i in chosen]})
    balancer = Balancer([listed[i] for i in chosen], balance)
    split = Split(name, variants, balancer=balancer)
    return Route(name, variants[0].backend, model.model, fallback, split=split, hedge=model.hedge)
