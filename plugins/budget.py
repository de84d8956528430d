"""Token budgets, context fitting and rate limits: count the input, make it fit, meter it per key and model.

On each request: count its input tokens (``proxy.tokens``: exact for OpenAI models, an o200k estimate
otherwise), fit it into the model's context window (clamp the output limit, or reject / truncate /
middle_out / summarize / fall back, per ``on_overflow``), then admit it against the key's and the model's
rate limits (rpm, tpm: sliding window) and budgets (tokens, USD per minute / day / month), reserving the
estimated tokens and cost up front; ``on_complete`` settles them to the actual usage. Every answer carries
``x-ratelimit-*`` headers (when rpm/tpm apply) and ``x-chaperone-budget`` (what was done). Counters live
in the store (``ratelimit:…``, ``budget:…``), so they hold across workers and replicas; each process takes
quota from them in chunks (``_budget.leases``) and admits and settles locally, so most requests touch the
store zero times. ``x-ratelimit-remaining-*`` then comes from local knowledge: exact for one process,
approximate across replicas (it lags their use since this process's last chunk).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from plugins._budget import meters
from plugins._budget.config import BudgetConfig
from plugins._budget.fit import Fit, Fitter, output_limit
from plugins._budget.leases import Leases
from plugins._budget.meters import Meter, Taken
from plugins._budget.settle import Settler
from proxy import ApiRequest, ApiResponse, Exchange, PluginRegistry, StashKey, Usage, hookimpl, tokens
from proxy.errors import BudgetExceeded, RequestRejected, ServiceUnavailable
from proxy.limits import KeyLimits
from proxy.pricing import ask_stream_usage, cost_usd, price_for
from proxy.store import Store, StoreError

if TYPE_CHECKING:
    from proxy.runtime import Resources

log = logging.getLogger(__name__)

_SLIDING = (("rpm", "requests"), ("tpm", "tokens"))
_FIXED = tuple((f"{what}_per_{span}", what, span) for what in ("tokens", "usd") for span in ("minute", "day", "month"))
_USAGE_ENDPOINTS = frozenset({"chat", "completions"})
_CACHE_SIZE = 10_000  # distinct per-key limit sets remembered (one per virtual key with its own limits)


class RateLimited(RequestRejected):
    """429 ``rate_limit_exceeded``: over rpm or tpm; ``Retry-After`` says when to try again."""

    status = 429
    type = "requests"
    code = "rate_limit_exceeded"
    retryable = True


@dataclass(slots=True)
class State:
    fit: Fit | None = None
    taken: list[Taken] = field(default_factory=list)
    est_tokens: int = 0
    est_usd: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


STATE: StashKey[State] = StashKey()


class Budget:
    name = "budget"
    Config = BudgetConfig

    def __init__(self, config: BudgetConfig) -> None:
        self.config = config
        self.fitter = Fitter(config)
        self.store: Store | None = None
        self.previous = meters.Previous()
        self.settler: Settler | None = None
        self.leases: Leases | None = None
        self._idle: asyncio.Task[None] | None = None
        self._plans: dict[KeyLimits, tuple[tuple[str, str, str, float], ...]] = {}
        self._merged: dict[KeyLimits, KeyLimits] = {}
        self._scoped: dict[tuple[str, KeyLimits], tuple[Meter, ...]] = {}
        self._wanted: dict[tuple[str, str, int], tuple[KeyLimits | None, tuple[Meter, ...]]] = {}

    @hookimpl
    async def on_startup(self, resources: Resources) -> None:
        self.store = resources.store
        self.settler = Settler(resources.store)
        self.leases = Leases(resources.store, self.previous, self.config.lease_fraction)
        self._idle = asyncio.ensure_future(self._return_idle(self.leases))
        for name in ("o200k_base", "cl100k_base"):  # ~0.3-0.7 s each on first use: never on the event loop
            await asyncio.to_thread(tokens.get_encoding, name)

    async def _return_idle(self, leases: Leases) -> None:
        idle_s = self.config.lease_idle_s
        while True:
            await asyncio.sleep(idle_s / 2)
            try:
                await leases.return_idle(idle_s)
            except Exception:  # never ends the loop: the next tick tries again
                log.exception("budget: giving idle leases back failed")

    @hookimpl
    async def on_shutdown(self) -> None:
        if self._idle is not None:
            self._idle.cancel()
            await asyncio.gather(self._idle, return_exceptions=True)
        if self.settler is not None:
            await self.settler.close()
        if self.leases is not None:
            await self.leases.release()

    @hookimpl
    async def on_request(self, exchange: Exchange) -> ApiResponse | None:
        state = exchange.stash.setdefault(STATE, State())
        try:
            state.fit = fit = await self.fitter.fit(exchange)
        except RequestRejected as exc:
            exchange.verdicts[self.name] = "rejected:context"
            exc.extra_headers["x-chaperone-budget"] = "rejected:context"
            raise
        ask_stream_usage(exchange)  # usage settles the reservation (the chain drops what the client did not ask for)
        out = fit.max_output if fit.max_output is not None else self.config.output_estimate
        state.est_tokens = fit.tokens + out
        price = price_for(exchange.route.upstream_model or exchange.request.model, exchange.policy.prices)
        state.est_usd = cost_usd(price, Usage(fit.tokens, out, fit.tokens + out)) if price else 0.0
        await self._admit(exchange, state)
        exchange.verdicts[self.name] = fit.verdict
        estimate = "" if fit.exact else " (estimate)"
        state.headers["x-chaperone-budget"] = f"{fit.verdict}; input_tokens={fit.tokens}{estimate}{fit.note}"
        return None

    def _plan(self, limits: KeyLimits) -> tuple[tuple[str, str, str, float], ...]:
        """(label, what, kind, limit) of every limit set, worked out once per distinct ``KeyLimits``."""
        plan = self._plans.get(limits)
        if plan is None:
            if len(self._plans) > _CACHE_SIZE:
                self._plans.clear()
            sliding = [(label, what, "sliding", getattr(limits, label)) for label, what in _SLIDING]
            fixed = [(label, what, span, getattr(limits, label)) for label, what, span in _FIXED]
            plan = self._plans[limits] = tuple(item for item in (*sliding, *fixed) if item[3] is not None)
        return plan

    def _key_limits(self, own: KeyLimits | None) -> KeyLimits:
        if own is None:
            return self.config.per_key
        merged = self._merged.get(own)
        if merged is None:
            if len(self._merged) > _CACHE_SIZE:
                self._merged.clear()
            merged = self._merged[own] = own.over(self.config.per_key)
        return merged

    def _meters(self, exchange: Exchange, state: State) -> list[tuple[Meter, float]]:
        amounts = {"requests": 1.0, "tokens": float(state.est_tokens), "usd": state.est_usd}
        return [(m, amounts[m.what]) for m in self._caller_meters(exchange)]

    def _caller_meters(self, exchange: Exchange) -> tuple[Meter, ...]:
        """The meters of a caller on a route, remembered by key, route and the key's own limits object
        (hashing a ``KeyLimits`` costs more than the rest of the lookup)."""
        caller = exchange.caller
        who = caller.key_id or caller.name or "open"
        route = exchange.route.name
        own = caller.limits
        found = self._wanted.get((who, route, id(own)))
        if found is not None and found[0] is own:
            return found[1]
        scopes = [(f"key:{who}", self._key_limits(own)), (f"model:{route}", self.config.per_model.get(route))]
        made = tuple(m for scope, limits in scopes if limits is not None for m in self._of(scope, limits))
        if len(self._wanted) > _CACHE_SIZE:
            self._wanted.clear()
        self._wanted[who, route, id(own)] = (own, made)
        return made

    def _of(self, scope: str, limits: KeyLimits) -> tuple[Meter, ...]:
        """The meters of one scope (``key:…`` or ``model:…``), made once per scope and limit set."""
        made = self._scoped.get((scope, limits))
        if made is None:
            if len(self._scoped) > _CACHE_SIZE:
                self._scoped.clear()
            made = self._scoped[scope, limits] = tuple(
                Meter(f"{'ratelimit' if kind == 'sliding' else 'budget'}:{scope}:{label}", kind, limit, what, label)
                for label, what, kind, limit in self._plan(limits)
            )
        return made

    async def key_levels(self, who: str, own: KeyLimits | None, now: float) -> list[dict[str, Any]]:
        """[console2] Each limit on key ``who`` (a virtual key's id, a static key's name): read-only, for the console.

        ``[{"label", "what", "limit", "used", "remaining"}]``; empty when no limit applies to the key.
        """
        if self.store is None:
            return []
        found = self._of(f"key:{who}", self._key_limits(own))
        store = self.store
        used = await asyncio.gather(*(meters.level(store, m, now) for m in found))
        return [
            {"label": m.label, "what": m.what, "limit": m.limit, "used": u, "remaining": max(0.0, m.limit - u)}
            for m, u in zip(found, used, strict=True)
        ]

    async def _admit(self, exchange: Exchange, state: State) -> None:
        """Admit from this process's leases; only meters whose lease is short go to the store (see leases)."""
        wanted = self._meters(exchange, state)
        leases = self.leases
        if not wanted or leases is None:
            return
        now = time.time()
        taken = [leases.local(m, amount, now) for m, amount in wanted]
        short = [i for i, t in enumerate(taken) if t is None]
        if short:
            results = await asyncio.gather(
                *(leases.take(wanted[i][0], wanted[i][1], now) for i in short), return_exceptions=True
            )
            for i, result in zip(short, results, strict=True):
                taken[i] = result if isinstance(result, Taken) else None
            failed = next((r for r in results if isinstance(r, BaseException)), None)
            if failed is not None:
                self._give_back(taken)
                self._store_failed(exchange, failed)
                return
        admitted = [t for t in taken if t is not None]
        state.headers.update(meters.rate_headers(admitted, now))
        over = [t for t in admitted if t.refused]
        if not over:
            state.taken = admitted
            return
        self._give_back(admitted)
        raise self._refusal(exchange, state, over[0], now)

    def _give_back(self, taken: Sequence[Taken | None]) -> None:
        """Return what this request took from the leases (not the refusals: they took nothing)."""
        for t in taken:
            if t is not None and not t.refused and self.leases is not None:
                self.leases.give_back(t)

    def _store_failed(self, exchange: Exchange, exc: BaseException) -> None:
        if not isinstance(exc, StoreError):
            raise exc
        if self.config.fail_open:
            log.warning("budget store unavailable, admitting (request_id=%s): %s", exchange.request_id, exc)
            return
        raise ServiceUnavailable("The budget store is unavailable; retry shortly.") from None

    def _refusal(self, exchange: Exchange, state: State, t: Taken, now: float) -> Exception:
        m = t.meter
        headers = dict(state.headers)
        retry = max(1, math.ceil(meters.reset_s(m, now)))
        headers["retry-after"] = str(retry)
        scope = m.name.split(":")[1]
        if m.kind == "sliding":
            exchange.verdicts[self.name] = headers["x-chaperone-budget"] = f"rejected:{m.label}"
            return RateLimited(
                f"Rate limit reached for {scope} on {m.what} per minute: limit {m.limit:g}, this request needs "
                f"{t.amount:g}. Please try again in {retry}s.",
                headers=headers,
            )
        exchange.verdicts[self.name] = headers["x-chaperone-budget"] = "rejected:budget"
        return BudgetExceeded(
            f"Budget {m.label} of {scope} is used up: limit {m.limit:g} {m.what}, this request would bring "
            f"it to {t.level:.6g}. It resets in {retry}s.",
            headers=headers,
        )

    async def scan(self, request: ApiRequest) -> dict[str, Any] | None:
        """For ``chaperone scan``: the input tokens, the model's window, and what on_overflow would do."""
        counted = await tokens.count_request(request.endpoint, request.body)
        fit = Fit(counted.tokens, counted.exact, output_limit(request.endpoint, request.body)[1])
        room = self.fitter.room(self.fitter.window(request.model), fit)
        fits = room is None or fit.tokens <= room
        action = "allow" if fits else ("block" if self.config.on_overflow == "reject" else self.config.on_overflow)
        return {"action": action, "tokens": counted.tokens, "exact": counted.exact, "input_room": room}

    @hookimpl
    async def on_response(self, exchange: Exchange) -> None:
        state = exchange.stash.get(STATE)
        if state is None or exchange.response is None:
            return
        exchange.response.headers.update(state.headers)

    @hookimpl
    async def on_complete(self, exchange: Exchange) -> None:
        state = exchange.stash.get(STATE)
        if state is None or not state.taken or self.settler is None:
            return
        used, usd = self._actual(exchange, state)
        if used is None:
            return  # usage unknown (a cut stream): the reservation stands
        actual = {"requests": 0.0, "tokens": float(used), "usd": usd}
        for t in state.taken:
            if t.meter.what != "requests" and self.leases is not None:
                overrun = self.leases.settle(t, actual[t.meter.what] - t.amount)
                if overrun > 0:
                    self.settler.add(t, overrun)  # beyond our lease: charged through the store, batched

    def _actual(self, exchange: Exchange, state: State) -> tuple[int | None, float]:
        """Tokens and USD the request used, sub-calls included; None tokens when unknown."""
        usage = exchange.usage
        if not exchange.attempts:
            usage = Usage()  # no upstream call (refused, or answered early, e.g. from the cache): nothing used
        if usage is None:
            return None, state.est_usd
        used = usage.total_tokens or usage.prompt_tokens + usage.completion_tokens
        usd = exchange.cost_usd
        if usd is None:
            model = exchange.response_model or exchange.route.upstream_model or exchange.request.model
            price = price_for(model, exchange.policy.prices)
            usd = cost_usd(price, usage) if price else 0.0
        for sub in exchange.subcalls:
            if sub.usage is not None:
                used += sub.usage.total_tokens
                sub_price = price_for(sub.model, exchange.policy.prices)
                usd += cost_usd(sub_price, sub.usage) if sub_price and exchange.cost_usd is None else 0.0
        return used, usd


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    register(Budget)
