"""The console's pages: overview, requests and one request, guards, spend, backends, keys, policy.

Each page reads through ``Ctx``: request-log queries run in the console's threads with a deadline, every
list has a hard cap (``PAGE_MAX``) and a link to the next page, never a count over raw rows.
"""

from __future__ import annotations

import functools
import time
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import orjson
from aiohttp import web
from pydantic import ValidationError

from console import charts
from console import data as loop_data
from console import spend as spending
from console.app import Ctx
from proxy.backends_view import backends_status
from proxy.errors import InvalidRequest, NotFound
from proxy.keys import KeyNotFound, KeySpec, KeyStateError, grant_problem
from proxy.requestlog import PAGE_MAX, Filters
from proxy.runtime import RUNTIME
from proxy.settings import SETTINGS
from proxy.store import StoreError

WINDOWS = {"15m": 900, "1h": 3600, "6h": 6 * 3600, "24h": 86400, "7d": 7 * 86400, "30d": 30 * 86400}
GUARD_VERDICTS = frozenset({"blocked", "flagged", "masked", "sanitized", "rejected", "audit_fail", "audit_invalid"})
_FILTERS = ("model", "key", "backend", "status", "plugin", "verdict")


def _window(ctx: Ctx) -> tuple[str, float, float]:
    name = ctx.request.query.get("window", "1h")
    if name not in WINDOWS:
        raise InvalidRequest(f"window must be one of {', '.join(WINDOWS)}", param="window")
    now = time.time()
    return name, now - WINDOWS[name], now


async def overview(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    name, since, until = _window(ctx)
    log = ctx.log
    data = await ctx.console.run(lambda: log.overview(since, until))
    series = data["series"]
    starts = [p["t"] for p in series]
    chart = {
        "requests": charts.bars([p["n"] for p in series], starts, title="requests per slot"),
        "errors": charts.bars([p["errors"] for p in series], starts, title="errors per slot"),
        "cost": charts.bars([p["cost"] for p in series], starts, title="cost per slot", unit=" USD"),
        "tokens": charts.bars([p["tokens"] for p in series], starts, title="tokens per slot"),
    }
    return ctx.render("overview.html", window=name, windows=WINDOWS, data=data, charts=chart,
                      dropped=log.dropped)  # fmt: skip


def _filters(ctx: Ctx) -> Filters:
    q = ctx.request.query
    values = {name: (q.get(name) or "").strip() or None for name in _FILTERS}
    since = until = None
    if q.get("window") in WINDOWS:
        since = time.time() - WINDOWS[q["window"]]
    return Filters(**values, since=since, until=until)


async def requests_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    q = request.query
    filters = _filters(ctx)
    before = int(q["before"]) if q.get("before", "").isdigit() else None
    limit = int(q["limit"]) if q.get("limit", "").isdigit() else 50
    limit = max(1, min(limit, PAGE_MAX))
    log = ctx.log
    rows = await ctx.console.run(lambda: log.page(filters, before, limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    kept = {k: v for k, v in q.items() if k in (*_FILTERS, "window", "limit") and v}
    older = f"?{urlencode({**kept, 'before': rows[-1]['seq']})}" if more and rows else None
    return ctx.render("requests.html", rows=rows, older=older, newest=f"?{urlencode(kept)}", query=kept,
                      windows=WINDOWS, limit=limit, filters=_FILTERS)  # fmt: skip


def _segments(record: dict[str, Any]) -> list[tuple[str, float, float, str]]:
    """The request's timeline: request hooks in order, the upstream attempts, response hooks in reverse."""
    detail = record["detail"]
    times: dict[tuple[str, str], float] = {(p, h): ms for p, h, ms in detail.get("times", [])}
    steps: list[str] = detail.get("steps", [])
    out: list[tuple[str, float, float, str]] = []
    at = 0.0

    def add(label: str, ms: float, kind: str) -> None:
        nonlocal at
        out.append((label, at, ms, kind))
        at += ms

    for phase in ("on_request", "wrap_call"):
        for name in steps:
            if (name, phase) in times:
                add(f"{name} · {phase}", times[(name, phase)], "step")
    for backend, _model, status, error, ms in detail.get("attempts", []):
        add(f"upstream {backend} → {status or error}", ms or 0.0, "upstream" if not error else "failed")
    for phase in ("on_response", "on_chunk", "on_stream_end", "on_complete"):
        for name in reversed(steps):
            if (name, phase) in times:
                add(f"{name} · {phase}", times[(name, phase)], "step")
    return out


async def request_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    ident = request.match_info["id"]
    log = ctx.log
    record = await ctx.console.run(lambda: log.request(ident))
    if record is None:
        raise NotFound(f"No request {ident!r} in the request log (it may have aged out).", code="request_not_found")
    segments = _segments(record)
    step_ms: dict[str, float] = {}
    for plugin, _hook, ms in record["detail"].get("times", []):
        step_ms[plugin] = step_ms.get(plugin, 0.0) + ms
    return ctx.render(
        "request.html",
        r=record,
        step_ms=step_ms,
        guard_verdicts=GUARD_VERDICTS,
        waterfall=charts.waterfall(segments) if segments else None,
        steps=record["detail"].get("steps", []),
    )


async def guards(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    name, since, until = _window(ctx)
    log = ctx.log
    counts = await ctx.console.run(lambda: log.guards(since, until))
    plugin = request.query.get("plugin") or None
    verdict = request.query.get("verdict") or None
    key = request.query.get("key")  # with plugin and verdict: that key's counts over time ("" is open mode)
    review: list[dict[str, Any]] = []
    per_key: list[dict[str, Any]] = []
    chart = None
    if plugin and verdict:
        review, per_key, found = await ctx.console.run(
            lambda: (
                log.page(Filters(plugin=plugin, verdict=verdict, key=key or None), None, 50),
                log.guard_keys(since, until, plugin, verdict),
                log.guard_series(since, until, plugin, verdict, key),
            )
        )
        starts = [found["start"] + i * found["step_s"] for i in range(len(found["counts"]))]
        chart = charts.bars(found["counts"], starts, title=f"{plugin} = {verdict} per slot")
    return ctx.render("guards.html", window=name, windows=WINDOWS, counts=counts, review=review, chart=chart,
                      per_key=per_key, plugin=plugin, verdict=verdict, key=key)  # fmt: skip


async def label(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    form = ctx.form
    seq, plugin, value = str(form.get("seq", "")), str(form.get("plugin", "")), str(form.get("label", ""))
    if not seq.isdigit() or value not in ("false_positive", "true_positive"):
        raise InvalidRequest("seq must be a request number and label false_positive or true_positive")
    log = ctx.log
    if not await ctx.console.run(lambda: log.label(int(seq), plugin, value)):
        raise NotFound(f"Request {seq} has no verdict from {plugin!r}.", code="verdict_not_found")
    raise web.HTTPSeeOther(_back(request, f"{ctx.base}/requests/{seq}"))


async def labels_export(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    after = request.query.get("after", "")
    log = ctx.log
    rows = await ctx.console.run(lambda: log.labels(int(after) if after.isdigit() else None))
    body = b"".join(
        orjson.dumps({"id": r["id"], "plugin": r["plugin"], "verdict": r["verdict"], "label": r["label"],
                      "key": r["key"], "model": r["model"], "time": r["ts"], "seq": r["seq"]}) + b"\n"
        for r in rows
    )  # fmt: skip
    return web.Response(body=body, content_type="application/x-ndjson",
                        headers={"content-disposition": "attachment; filename=verdict-labels.jsonl"})  # fmt: skip


async def spend(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    name, since, until = _window(ctx)
    log = ctx.log
    by_key, by_model, fired = await ctx.console.run(
        lambda: (log.spend(since, until, "key"), log.spend(since, until, "model"), log.limits_fired(since, until))
    )
    active = request.app[RUNTIME].in_force()
    records = (await active.keyring.manager.list())[:PAGE_MAX]
    limits: dict[str, Any] = {}
    for entry in list((active.policy.keys or {}).values())[:PAGE_MAX]:
        if entry[4] is not None:  # a static key's own rate limits and budgets
            limits[entry[0]] = entry[4].model_dump(exclude_none=True)
    try:
        left = await spending.remaining(active.policy, records, active.keyring.manager.clock())
        left_error = None
    except TimeoutError:
        left, left_error = [], "The budget counters took too long to read."
    except StoreError as exc:
        left, left_error = [], f"The store is unavailable: {exc}"
    return ctx.render("spend.html", window=name, windows=WINDOWS, by_key=by_key, by_model=by_model, fired=fired,
                      limits=limits, by_team=spending.by_team(by_key, records), remaining=left,
                      remaining_error=left_error, keys_max=spending.KEYS_MAX)  # fmt: skip


async def backends(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    active = request.app[RUNTIME].in_force()
    rows = backends_status(active)[:PAGE_MAX]
    now = time.time()
    recent: dict[str, dict[str, float]] = {}
    if ctx.console.log is not None and ctx.console.log.unavailable is None:
        log = ctx.console.log
        recent = await ctx.console.run(lambda: log.backends(now - 900, now))
    return ctx.render("backends.html", rows=rows, recent=recent, dumps=lambda v: orjson.dumps(v, default=str).decode())


async def keys(request: web.Request, ctx: Ctx, created: dict[str, Any] | None = None) -> web.StreamResponse:
    manager = request.app[RUNTIME].in_force().keyring.manager
    records = (await manager.list())[:PAGE_MAX]
    now = manager.clock()
    views = [r.view(now) for r in records]
    return ctx.render("keys.html", keys=views, created=created, chains=sorted(ctx.policy.chains))


async def key_create(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    form = ctx.form
    active = request.app[RUNTIME].in_force()
    body: dict[str, Any] = {"name": str(form.get("name", "")).strip()}
    if form.get("chain"):
        body["chain"] = str(form["chain"])
    if str(form.get("models", "")).strip():
        body["models"] = [m.strip() for m in str(form["models"]).split(",") if m.strip()]
    if str(form.get("team", "")).strip():
        body["metadata"] = {"team": str(form["team"]).strip()}
    if str(form.get("expires", "")).strip():
        body["expires"] = str(form["expires"]).strip()
    try:
        spec = KeySpec.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InvalidRequest(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    problem = grant_problem(active.policy, spec.chain, spec.models)
    if problem is not None:
        raise InvalidRequest(problem[1], param=problem[0])
    record, secret = await active.keyring.manager.create(spec)
    return await keys(request, ctx, created={"name": record.name, "id": record.id, "key": secret, "action": "created"})


async def key_action(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    active = request.app[RUNTIME].in_force()
    manager, ident, action = active.keyring.manager, request.match_info["id"], request.match_info["action"]
    try:
        if action == "rotate":
            assert active.policy.admin is not None
            record, secret = await manager.rotate(ident, overlap_s=active.policy.admin.rotation_overlap_s)
            active.keyring.forget(record.id)
            return await keys(request, ctx, created={"name": record.name, "id": record.id, "key": secret,
                                                     "action": "rotated"})  # fmt: skip
        if action == "revoke":
            record = await manager.revoke(ident)
            active.keyring.forget(record.id)
            raise web.HTTPSeeOther(f"{ctx.base}/keys")
    except KeyNotFound as exc:
        raise NotFound(str(exc), code="key_not_found") from None
    except KeyStateError as exc:
        raise InvalidRequest(str(exc), code="key_not_active") from None
    raise NotFound(f"Unknown key action {action!r}")


async def policy_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    runtime = request.app[RUNTIME]
    active = runtime.in_force()
    policy = active.policy
    chains = {name: [s.name for s in chain.steps] for name, chain in policy.chains.items()}
    routes = {name: {"backend": r.backend, "upstream_model": r.upstream_model} for name, r in policy.routes.items()}
    backend_urls = {name: _safe_url(getattr(b, "url", None)) for name, b in policy.backends.items()}
    failure = runtime.last_failure  # kept after a later good reload, with when it happened
    return ctx.render("policy.html", source=policy.source, digest=active.digest, chains=chains, routes=routes,
                      backends=backend_urls, failure=failure, failing_now=runtime.last_error is not None,
                      keys=len(policy.keys or {}), admin=policy.admin is not None,
                      loaded_at=active.loaded_at or None, reloads=runtime.reloads)  # fmt: skip


async def capture_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    paths = loop_data.capture_paths(ctx.policy)[:4]
    stores = [await ctx.console.run(functools.partial(loop_data.capture_summary, p)) for p in paths]
    return ctx.render("capture.html", stores=stores, recent_max=loop_data.RECENT_MAX)


async def evals_page(request: web.Request, ctx: Ctx) -> web.StreamResponse:
    root = loop_data.runs_dir(ctx.console.env, request.app[SETTINGS].home)
    runs = await ctx.console.run(lambda: loop_data.eval_runs(root))
    return ctx.render("evals.html", runs=runs, root=str(root), runs_max=loop_data.RUNS_MAX)


def _safe_url(url: object) -> str | None:
    """A URL without user:password (secrets hidden)."""
    if not isinstance(url, str):
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _back(request: web.Request, default: str) -> str:
    referer = request.headers.get("Referer", "")
    return referer if referer.startswith(f"{request.scheme}://{request.host}/") else default


ROUTES: tuple[tuple[str, Any, bool], ...] = (
    ("/", overview, False),
    ("/requests", requests_page, False),
    ("/requests/{id}", request_page, False),
    ("/guards", guards, False),
    ("/guards/label", label, True),
    ("/guards/labels.jsonl", labels_export, False),
    ("/spend", spend, False),
    ("/backends", backends, False),
    ("/keys", keys, False),
    ("/keys", key_create, True),
    ("/keys/{id}/{action}", key_action, True),
    ("/policy", policy_page, False),
    ("/capture", capture_page, False),
    ("/evals", evals_page, False),
)
