"""Request metrics: Prometheus ``GET /metrics`` and, when configured, the same through OpenTelemetry.

Everything is derived from the finished ``Exchange`` after its answer was sent (latency, TTFT,
tokens, cost, plugin verdicts, upstream attempts), so plugins never import a metrics library and
recording never delays a client. Per request that is a handful of pre-resolved counter and
histogram updates (label children are looked up once per label combination, then cached).

With several worker processes (``PROMETHEUS_MULTIPROC_DIR`` set before ``prometheus_client`` is
imported) every value is written to that directory's memory-mapped files and ``/metrics`` of any
worker shows the sum over all of them (``MultiProcessCollector``); gauges sum over live workers.
Gauges that describe the process right now (in-flight requests, active streams, Realtime
sessions) are sampled at scrape time, and every second in multiprocess mode, at no cost per request.

``/metrics`` is open when the policy has no ``admin`` section (a sidecar on loopback) and asks for
``Authorization: Bearer <admin key>`` when it has one, unless ``metrics.require_admin_key`` says otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from bisect import bisect_left
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
import prometheus_client
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import choose_encoder
from pydantic import BaseModel, ConfigDict, Field

from proxy.chain import HOOK_TIMES
from proxy.errors import Forbidden, NotFound, Unauthorized
from proxy.exchange import ApiResponse, Exchange, StashKey, Usage
from proxy.metrics_otel import OtelMetrics, outcome, provider_from_env

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider

    from proxy.realtime import RealtimeStats
    from proxy.runtime import Runtime

log = logging.getLogger(__name__)

FIRST_EVENT = StashKey[float]()  # monotonic time the first SSE event went to the client (set by the handlers)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
_HOOK_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
_SYNC_S = 1.0


class MetricsConfig(BaseModel):
    """The policy's ``metrics:`` section."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    enabled: bool = Field(default=True, description="Record request metrics and serve GET /metrics.")
    plugin_timing: bool = Field(
        default=False,
        description="Time every plugin hook (chaperone_plugin_hook_duration_seconds); adds a timer per hook call.",
    )
    require_admin_key: bool | None = Field(
        default=None,
        description="Whether GET /metrics needs 'Authorization: Bearer <admin key>' (default: when the policy "
        "has an admin section).",
    )


def usage_from_raw(raw: bytes | None) -> Usage | None:
    """The top-level ``usage`` object of an upstream's JSON answer, mostly without parsing the whole answer.

    In JSON text ``"usage":`` with bare quotes can only be a key (inside a string its quotes are
    escaped). The last one is taken with the rest of the answer after it, behind an opening brace:
    that parses only if the key belongs to the outermost object (a nested one leaves one closing
    bracket too many), so the quick path never takes a nested ``usage`` for the answer's. Anything
    else (a nested last ``usage``, ``"usage" :`` spaced, no usage at all) parses the whole answer.
    """
    if not raw:
        return None
    at = raw.rfind(b'"usage":')
    try:
        if at >= 0:
            try:
                tail = orjson.loads(b"{" + raw[at:])
            except ValueError:
                tail = None
            if type(tail) is dict:
                return fast_usage(tail.get("usage"))
        body = orjson.loads(raw)
        return fast_usage(body.get("usage")) if type(body) is dict else None
    except ValueError:
        return None


def fast_usage(usage: object) -> Usage | None:
    """``Usage.from_openai`` with a quick path for the common chat shape (the same result, fewer lookups)."""
    if type(usage) is not dict:
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
    if type(prompt) is not int or type(completion) is not int or prompt < 0 or completion < 0:
        return _general_usage(usage)
    total = usage.get("total_tokens") or prompt + completion
    details, out_details = usage.get("prompt_tokens_details"), usage.get("completion_tokens_details")
    cached = details.get("cached_tokens") if type(details) is dict else 0
    reasoning = out_details.get("reasoning_tokens") if type(out_details) is dict else 0
    if type(total) is not int or type(cached) is not int or type(reasoning) is not int:
        return _general_usage(usage)
    return Usage(prompt, completion, total, min(max(cached, 0), prompt), min(max(reasoning, 0), completion))


def _general_usage(usage: dict[str, Any]) -> Usage | None:
    try:
        return Usage.from_openai(usage)
    except TypeError:  # a count that is not a number (Usage.from_openai adds before it checks)
        return None


def note_usage(exchange: Exchange, response: ApiResponse) -> None:
    """Set ``exchange.usage`` from a whole answer (the cheap path when only metrics need it)."""
    usage = fast_usage(response.body.get("usage")) if response.body is not None else usage_from_raw(response.raw)
    exchange.usage = usage or exchange.usage


class _Instruments:
    """The Prometheus metrics of one app (in ``registry``, or in the multiprocess files when it is None)."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(name, doc, labels, registry=registry)

        def histogram(name: str, doc: str, buckets: tuple[float, ...], *labels: str) -> Histogram:
            return Histogram(name, doc, labels, registry=registry, buckets=buckets)

        def gauge(name: str, doc: str) -> Gauge:
            return Gauge(name, doc, registry=registry, multiprocess_mode="livesum")

        self.latency = histogram(
            "chaperone_request_duration_seconds", "Request latency, arrival to last byte sent.",
            _LATENCY_BUCKETS, "endpoint", "model", "status",
        )  # fmt: skip
        self.ttft = histogram(
            "chaperone_time_to_first_token_seconds", "Streams: arrival to the first event sent.",
            _LATENCY_BUCKETS, "endpoint", "model",
        )  # fmt: skip
        self.tokens = counter("chaperone_tokens", "Tokens by model, key and type.", "model", "key", "type")
        self.cost = counter("chaperone_cost_usd", "Spend in USD by model and key.", "model", "key")
        self.cache = counter("chaperone_cache_lookups", "Cache outcomes (hit, miss, shadow-hit, …).", "outcome")
        # [loop] the capture plugin's verdict per request: kept (queued for the dataset store) or dropped (queue full)
        self.capture = counter("chaperone_capture_records", "Requests the capture plugin kept or dropped.", "outcome")
        self.rejections = counter(
            "chaperone_rejections", "Requests refused by a plugin (budget, rate limit, …).", "plugin", "reason"
        )
        self.errors = counter("chaperone_errors", "Requests that ended in an error, by code.", "endpoint", "code")
        self.hooks = histogram(
            "chaperone_plugin_hook_duration_seconds", "Wall time in a plugin hook per request (metrics.plugin_timing).",
            _HOOK_BUCKETS, "plugin", "hook",
        )  # fmt: skip
        self.attempts = counter(
            "chaperone_upstream_attempts", "Upstream calls by backend and outcome.", "backend", "outcome"
        )
        self.inflight = gauge("chaperone_requests_in_flight", "Chain requests in flight.")
        self.streams = gauge("chaperone_streams_active", "Streams being written.")
        self.rt_active = gauge("chaperone_realtime_sessions_active", "Open Realtime sessions.")
        self.rt_sessions = counter("chaperone_realtime_sessions", "Realtime sessions opened or refused.", "event")
        self.rt_closed = counter("chaperone_realtime_closed", "Realtime sessions closed, by close code.", "code")
        self.rt_frames = counter("chaperone_realtime_frames", "Realtime frames by direction.", "direction")
        self.rt_bytes = counter("chaperone_realtime_bytes", "Realtime bytes by direction.", "direction")


class _Row(NamedTuple):
    """The metric children one kind of request (endpoint, route, status, key) updates, resolved once."""

    latency: Callable[[float], None]
    ttft: Callable[[float], None]
    input: Callable[[float], None]
    output: Callable[[float], None]


def _adder(counter: Any) -> Callable[[float], None]:
    """``counter.inc`` without the public method's checks (the child is known to be a valid counter)."""
    value = getattr(counter, "_value", None)
    inc = getattr(value, "inc", None)
    return inc if callable(inc) else counter.inc  # type: ignore[no-any-return]


def _observer(histogram: Any) -> Callable[[float], None]:
    """``histogram.observe`` as one bisect and two value updates (what the public method does, minus checks)."""
    try:
        add_sum = histogram._sum.inc
        buckets = tuple(bucket.inc for bucket in histogram._buckets)
        bounds = tuple(histogram._upper_bounds)
    except AttributeError:  # another prometheus_client layout: the public method
        return histogram.observe  # type: ignore[no-any-return]
    if len(buckets) != len(bounds):
        return histogram.observe  # type: ignore[no-any-return]

    def observe(amount: float) -> None:
        add_sum(amount)
        buckets[bisect_left(bounds, amount)](1)

    return observe


class Metrics:
    """One app's metrics: the recorder the handlers call, the sampled gauges and the exposition."""

    def __init__(
        self,
        runtime: Runtime,
        realtime: RealtimeStats,
        *,
        multiprocess_dir: str | None = None,
        meter_provider: MeterProvider | None = None,
    ) -> None:
        self.runtime = runtime
        self.realtime = realtime
        self.multiprocess = bool(multiprocess_dir)
        if self.multiprocess and not _multiprocess_values():
            log.warning("PROMETHEUS_MULTIPROC_DIR was set after prometheus_client was imported: per-worker metrics")
            self.multiprocess = False
        self.registry = CollectorRegistry()
        self.m = _Instruments(None if self.multiprocess else self.registry)
        if self.multiprocess:
            from prometheus_client import multiprocess

            self._exposed = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._exposed, path=multiprocess_dir)  # type: ignore[no-untyped-call]
        else:
            self._exposed = self.registry
            prometheus_client.ProcessCollector(registry=self.registry)  # process_cpu_seconds_total, memory, fds
            prometheus_client.GCCollector(registry=self.registry)
        self.otel = OtelMetrics(meter_provider, runtime) if meter_provider is not None else None
        self._children: dict[tuple[Any, ...], Any] = {}
        self._rows: dict[tuple[str, str, int, str], _Row] = {}
        self._attempts: dict[tuple[str, int | None, str | None], Callable[[float], None]] = {}
        self._realtime_seen: dict[tuple[str, str], int] = {}
        self._sync_task: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls, runtime: Runtime, realtime: RealtimeStats, env: Mapping[str, str] | None = None) -> Metrics:
        env = os.environ if env is None else env
        directory = env.get("PROMETHEUS_MULTIPROC_DIR")
        return cls(runtime, realtime, multiprocess_dir=directory, meter_provider=provider_from_env(env))

    # ---- per request (after the answer was sent) -------------------------------------------

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _row(self, endpoint: str, model: str, status: int, key: str) -> _Row:
        m, child = self.m, self._child
        row = _Row(
            _observer(child(m.latency, endpoint, model, str(status))),
            _observer(child(m.ttft, endpoint, model)),
            _adder(child(m.tokens, model, key, "input")),
            _adder(child(m.tokens, model, key, "output")),
        )
        self._rows[(endpoint, model, status, key)] = row
        return row

    def record(self, exchange: Exchange, status: int, code: str | None, now: float) -> None:
        """Add one finished request; a few µs, called once the client has its answer."""
        endpoint = exchange.request.endpoint
        model = exchange.route.name  # the policy's route, not the client's string: bounded label values
        key = exchange.caller.name or ""
        row = self._rows.get((endpoint, model, status, key)) or self._row(endpoint, model, status, key)
        started = exchange.started
        row.latency(now - started)
        stash = exchange.stash
        if len(stash):
            first = stash.get(FIRST_EVENT)
            if first is not None:
                row.ttft(first - started)
            times = stash.get(HOOK_TIMES)
            if times:
                for (plugin, hook), seconds in times.items():
                    self._child(self.m.hooks, plugin, hook).observe(seconds)
        usage = exchange.usage
        if usage is not None:
            row.input(usage.prompt_tokens)
            row.output(usage.completion_tokens)
            if usage.cached_tokens or usage.reasoning_tokens:
                self._details(model, key, usage)
        for attempt in exchange.attempts:
            attempts = self._attempts.get((attempt.backend, attempt.status, attempt.error))
            if attempts is None:
                attempts = self._attempt_counter(attempt.backend, attempt.status, attempt.error)
            attempts(1)
        if exchange.cost_usd or exchange.verdicts or exchange.subcalls or code is not None:
            self._rest(exchange, model, key, endpoint, code)
        if self.otel is not None:
            self.otel.record(exchange, status, code, now, stash.get(FIRST_EVENT))

    def _attempt_counter(self, backend: str, status: int | None, error: str | None) -> Callable[[float], None]:
        adder = _adder(self._child(self.m.attempts, backend, outcome(status, error)))
        self._attempts[(backend, status, error)] = adder
        return adder

    def _details(self, model: str, key: str, usage: Usage) -> None:
        if usage.cached_tokens:
            self._child(self.m.tokens, model, key, "cached").inc(usage.cached_tokens)
        if usage.reasoning_tokens:
            self._child(self.m.tokens, model, key, "reasoning").inc(usage.reasoning_tokens)

    def _rest(self, exchange: Exchange, model: str, key: str, endpoint: str, code: str | None) -> None:
        """What only some requests have: cost, verdicts, sub-calls, an error."""
        if exchange.cost_usd:
            self._child(self.m.cost, model, key).inc(exchange.cost_usd)
        verdicts = exchange.verdicts
        cache = verdicts.get("cache")
        if cache is not None:
            self._child(self.m.cache, cache).inc()
        captured = verdicts.get("capture")  # [loop]
        if captured is not None:
            self._child(self.m.capture, captured).inc()
        for plugin, verdict in verdicts.items():
            if verdict.startswith("rejected:"):
                self._child(self.m.rejections, plugin, verdict[9:]).inc()
        for sub in exchange.subcalls:
            if sub.usage is not None:
                self._child(self.m.tokens, sub.model, key, "input").inc(sub.usage.prompt_tokens)
                self._child(self.m.tokens, sub.model, key, "output").inc(sub.usage.completion_tokens)
        if code is not None:
            self._child(self.m.errors, endpoint, code).inc()

    def refused(self, endpoint: str, status: int, code: str | None, seconds: float) -> None:
        """A request refused before it had an exchange (key, body, model): latency and error only."""
        self._child(self.m.latency, endpoint, "", str(status)).observe(seconds)
        if code is not None:
            self._child(self.m.errors, endpoint, code).inc()

    # ---- sampled gauges and the exposition ------------------------------------------------

    def sample(self) -> None:
        """Copy what describes the process right now (in-flight, streams, Realtime) into the metrics."""
        m, runtime, stats = self.m, self.runtime, self.realtime
        m.inflight.set(runtime.current.inflight if runtime.current is not None else 0)
        m.streams.set(len(runtime.streams))
        m.rt_active.set(stats.active)
        self._advance(m.rt_sessions, "opened", stats.opened)
        self._advance(m.rt_sessions, "refused", stats.refused)
        self._advance(m.rt_frames, "up", stats.frames_up)
        self._advance(m.rt_frames, "down", stats.frames_down)
        self._advance(m.rt_bytes, "up", stats.bytes_up)
        self._advance(m.rt_bytes, "down", stats.bytes_down)
        for close_code, count in stats.closed.items():
            self._advance(m.rt_closed, str(close_code), count)

    def _advance(self, counter: Counter, label: str, total: int) -> None:
        """Counters only go up: add what ``total`` (a RealtimeStats field) gained since the last sample."""
        seen_key = (counter._name, label)
        delta = total - self._realtime_seen.get(seen_key, 0)
        if delta > 0:
            self._child(counter, label).inc(delta)
            self._realtime_seen[seen_key] = total

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        self.sample()
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self._exposed), content_type

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        """``cleanup_ctx``: in multiprocess mode, sample gauges every second so other workers' scrapes see them."""
        if self.multiprocess:
            self._sync_task = asyncio.create_task(self._sync(), name="chaperone-metrics-sample")
        yield
        if self._sync_task is not None:
            self._sync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sync_task
        if self.otel is not None:
            self.otel.shutdown()

    async def _sync(self) -> None:
        while True:
            await asyncio.sleep(_SYNC_S)
            try:
                self.sample()
            except Exception:
                log.exception("sampling metrics failed")


def _multiprocess_values() -> bool:
    """Whether prometheus_client writes values to PROMETHEUS_MULTIPROC_DIR (decided when it was imported)."""
    return prometheus_client.values.ValueClass is not prometheus_client.values.MutexValue


# ---- GET /metrics --------------------------------------------------------------------------

METRICS = web.AppKey("metrics", Metrics)


async def handle_metrics(request: web.Request) -> web.Response:
    """The Prometheus text exposition (OpenMetrics when the scraper asks for it)."""
    from proxy.runtime import RUNTIME

    policy = request.app[RUNTIME].in_force().policy
    config: MetricsConfig = policy.metrics
    if not config.enabled:
        raise NotFound("Metrics are disabled by the policy (metrics.enabled: false).", code="unknown_url")
    admin = policy.admin
    if config.require_admin_key if config.require_admin_key is not None else admin is not None:
        if admin is None:
            raise Forbidden("GET /metrics needs the admin key, and the policy has no admin section.")
        if not admin.accepts(request.headers.get("Authorization")):
            raise Unauthorized("Missing or incorrect admin key: send 'Authorization: Bearer <admin key>'.")
    metrics = request.app[METRICS]
    if metrics.multiprocess:  # reads every worker's files: off the event loop
        body, content_type = await asyncio.get_running_loop().run_in_executor(
            None, metrics.exposition, request.headers.get("Accept")
        )
    else:
        body, content_type = metrics.exposition(request.headers.get("Accept"))
    return web.Response(body=body, headers={"Content-Type": content_type})


def worker_exited(pid: int, env: Mapping[str, str] | None = None) -> None:
    """For the parent of ``serve --workers N``: drop a dead worker's live gauges (its counters stay summed)."""
    directory = (os.environ if env is None else env).get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, directory)  # type: ignore[no-untyped-call]
