"""Model routes with several targets, as the policy declares them: canary / A-B splits and spread routes.

This is the compiled, pure-data side (``SplitSpec`` on a ``Route``): which variants a route has, their
weights, what a variant is sticky to, and the balancing strategy of a spread route. The router (at the
edge, ``backends/canary.py``) turns a spec into the live object that picks a variant per attempt, so
the core never imports ``backends/``. See ``backends/canary.py`` for how picking works.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxy.policy import Route
    from proxy.policyfile import BackendConfig, BalanceConfig, ModelConfig


@dataclass(frozen=True, slots=True, eq=False)
class SplitSpec:
    """A route's variants: weighted and sticky (a canary split), or spread by ``balance`` (several backends)."""

    name: str
    variants: tuple[Route, ...]
    weights: tuple[float, ...] = ()
    sticky: str = "user"
    balance: BalanceConfig | None = None

    def backends(self) -> set[str]:
        return {variant.backend for variant in self.variants}


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
    split = SplitSpec(name, tuple(variants), tuple(weights), model.sticky)
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
    split = SplitSpec(name, variants, balance=balance)
    return Route(name, variants[0].backend, model.model, fallback, split=split, hedge=model.hedge)
