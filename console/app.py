"""The console's wiring: routes under the prefix, the login, the guard every page goes through, rendering.

The prefix is ``CHAPERONE_CONSOLE_PREFIX`` (default ``/chaperone/ui``). Behind a reverse proxy that
strips a sub-path, send it as ``X-Forwarded-Prefix``: links and the cookie path then start with it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import jinja2
from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from console import auth
from console.auth import Session
from proxy.errors import Forbidden, NotFound, PayloadTooLarge, ServiceUnavailable, Unauthorized
from proxy.policy import Policy
from proxy.requestlog import QueryTimeout, RequestLog
from proxy.runtime import RUNTIME
from proxy.settings import SETTINGS

CONSOLE_PREFIX_ENV = "CHAPERONE_CONSOLE_PREFIX"
DEFAULT_PREFIX = "/chaperone/ui"
HERE = Path(__file__).resolve().parent
T = TypeVar("T")
Page = Callable[[web.Request, "Ctx"], Awaitable[web.StreamResponse]]
_PREFIX_OK = re.compile(r"(/[A-Za-z0-9._~-]+)*")


class Console:
    """What the pages share: the request log, a small thread pool for its queries, templates, a render cap."""

    def __init__(self, log: RequestLog | None, prefix: str, env: Mapping[str, str] | None = None) -> None:
        self.log = log
        self.prefix = prefix
        self.env: Mapping[str, str] = dict(env or {})  # [console2] CHAPERONE_EVAL_RUNS
        self.pool: ThreadPoolExecutor | None = None
        self.renders = asyncio.Semaphore(4)
        self.templates = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
        )
        self.templates.filters["utc"] = _utc

    async def lifecycle(self, app: web.Application) -> AsyncIterator[None]:
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="chaperone-console")
        yield
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def run(self, fn: Callable[[], T], timeout_s: float = 3.0) -> T:
        """``fn`` in the console's threads, bounded in time; a timeout is a 503 the page shows."""
        loop = asyncio.get_running_loop()
        try:
            return await asyncio.wait_for(loop.run_in_executor(self.pool, fn), timeout_s)
        except (TimeoutError, QueryTimeout):
            raise ServiceUnavailable("The console query took too long; narrow the filters or the window.") from None


CONSOLE = web.AppKey("console", Console)


class Ctx:
    """One page request: the policy in force, the visitor's session, and the base of every link."""

    def __init__(self, console: Console, policy: Policy, session: Session, base: str, request: web.Request) -> None:
        self.console = console
        self.policy = policy
        self.session = session
        self.base = base
        self.request = request
        self.form: MultiDictProxy[str] = MultiDictProxy(MultiDict())  # a change's posted form, read once

    @property
    def log(self) -> RequestLog:
        log = self.console.log
        if log is None:
            raise ServiceUnavailable("The request log is off (CHAPERONE_REQUEST_LOG=off).")
        if log.unavailable is not None:
            raise ServiceUnavailable(f"The request log could not be opened: {log.unavailable}")
        return log

    def render(self, template: str, status: int = 200, **values: Any) -> web.Response:
        refresh = self.request.query.get("refresh", "")
        html = self.console.templates.get_template(template).render(
            base=self.base,
            session=self.session,
            page=template.removesuffix(".html"),
            refresh_s=min(max(int(refresh), 1), 60) if refresh.isdigit() else 5,  # live pages poll this often
            **values,
        )
        return web.Response(text=html, status=status, content_type="text/html", headers=_NO_STORE)


_NO_STORE = {"cache-control": "no-store", "x-frame-options": "DENY", "referrer-policy": "same-origin",
             "content-security-policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'"}  # fmt: skip


def _utc(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")


def mount(app: web.Application, log: RequestLog | None, env: Mapping[str, str]) -> None:
    """Add the console's routes to ``app`` (call before the admin API's catch-all)."""
    prefix = "/" + (env.get(CONSOLE_PREFIX_ENV) or DEFAULT_PREFIX).strip("/")
    if not _PREFIX_OK.fullmatch(prefix):
        raise ValueError(f"{CONSOLE_PREFIX_ENV}: {prefix!r} is not a URL path")
    console = Console(log, prefix, env)
    app[CONSOLE] = console
    app.cleanup_ctx.append(console.lifecycle)
    from console import pages  # the pages import this module

    router = app.router
    router.add_static(prefix + "/static", HERE / "static", append_version=False)
    router.add_get(prefix, _redirect_home)
    router.add_route("*", prefix + "/login", login)
    router.add_post(prefix + "/logout", logout)
    for path, page, change in pages.ROUTES:
        router.add_route("POST" if change else "GET", prefix + path, _guarded(page, change))


_MAX_FORM = 64 * 1024


async def _form(request: web.Request) -> MultiDictProxy[str]:
    """The posted form, refused past 64 KiB (the app's own limit is sized for API bodies)."""
    if request.content_length is not None and request.content_length > _MAX_FORM:
        raise PayloadTooLarge("A console form is at most 64 KiB.")
    body = await request.content.read(_MAX_FORM + 1)
    if len(body) > _MAX_FORM:
        raise PayloadTooLarge("A console form is at most 64 KiB.")
    return MultiDictProxy(MultiDict(parse_qsl(body.decode(errors="replace"), keep_blank_values=True)))


def _base(request: web.Request, console: Console) -> str:
    forwarded = request.headers.get("X-Forwarded-Prefix", "").rstrip("/")
    if forwarded and not _PREFIX_OK.fullmatch(forwarded):
        forwarded = ""
    return forwarded + console.prefix


def _policy(request: web.Request) -> Policy:
    policy = request.app[RUNTIME].in_force().policy
    why = auth.enabled(policy, request.app[SETTINGS].host)
    if why is not None:
        raise Forbidden(f"The console is off: {why}.", code="console_disabled")
    return policy


def _guarded(page: Page, change: bool) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        console = request.app[CONSOLE]
        policy = _policy(request)
        base = _base(request, console)
        session = auth.from_headers(policy, request.headers.get("Authorization"), request.cookies.get(auth.COOKIE))
        if session is None:
            if request.headers.get("Authorization") or change:
                raise Unauthorized("Log in to the console, or send 'Authorization: Bearer <admin key>'.")
            raise web.HTTPSeeOther(f"{base}/login?next={request.rel_url.path_qs.removeprefix(base)}")
        ctx = Ctx(console, policy, session, base, request)
        if change:
            form = ctx.form = await _form(request)
            sent = form.get("csrf")
            if not auth.csrf_ok(session, sent if isinstance(sent, str) else None):
                raise Forbidden("This form is missing its CSRF token (reload the page and try again).", code="csrf")
            if not session.admin:
                raise Forbidden("Viewers cannot change anything; log in with the admin key.", code="read_only")
        async with console.renders:
            return await page(request, ctx)

    return handler


async def _redirect_home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(_base(request, request.app[CONSOLE]) + "/")


async def login(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    policy = _policy(request)
    base = _base(request, console)
    target = request.query.get("next", "/")
    if not target.startswith("/") or target.startswith("//"):
        target = "/"
    error = None
    if request.method == "POST":
        form = await _form(request)
        key = form.get("key")
        target = str(form.get("next") or "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        role = auth.role_for_key(policy, key if isinstance(key, str) else None)
        if role is not None:
            out = web.HTTPSeeOther(base + target)
            out.set_cookie(auth.COOKIE, auth.issue(policy, role), path=base, httponly=True, samesite="Strict",
                           max_age=int(policy.console.session_ttl_s), secure=request.secure)  # fmt: skip
            raise out
        error = "That key is not the admin key or a viewer key."
    elif request.method != "GET":
        raise NotFound("Unknown console URL")
    html = console.templates.get_template("login.html").render(base=base, error=error, next=target, session=None,
                                                               page="login")  # fmt: skip
    return web.Response(text=html, status=401 if error else 200, content_type="text/html", headers=_NO_STORE)


async def logout(request: web.Request) -> web.StreamResponse:
    console = request.app[CONSOLE]
    base = _base(request, console)
    policy = _policy(request)
    session = auth.from_cookie(policy, request.cookies.get(auth.COOKIE))
    sent = (await _form(request)).get("csrf")
    if session is not None and not auth.csrf_ok(session, sent if isinstance(sent, str) else None):
        raise Forbidden("This form is missing its CSRF token (reload the page and try again).", code="csrf")
    out = web.HTTPSeeOther(base + "/login")
    out.del_cookie(auth.COOKIE, path=base)
    raise out
