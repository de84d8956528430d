"""The console over HTTP: who may see it, CSRF, the viewer role, bounded pages, and what real traffic shows."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from proxy.recorder import RECORDER
from proxy.requestlog import Filters
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

ADMIN = "admin-key-0123456789"
VIEWER = "viewer-key-0123456789"
APP_KEY = "sk-app1-0123456789"
EXTRA = (
    f"admin: {{key: '{ADMIN}'}}\nconsole: {{viewer_keys: ['{VIEWER}']}}\n"
    f"keys:\n  - {{name: app1, key: '{APP_KEY}', chain: default}}\n"
)
MESSAGES: list[Any] = [{"role": "user", "content": "my secret prompt text"}]
CHAIN = "[{cost: {}}, {params: {defaults: {temperature: 0.5}}}]"


def ui(proxy: RunningProxy, path: str = "/") -> str:
    return proxy.url.removesuffix("/v1") + "/chaperone/ui" + path


@pytest.fixture
async def proxy(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> RunningProxy:
    return await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=CHAIN, extra=EXTRA)))


async def traffic(proxy: RunningProxy, n: int) -> None:
    async with proxy.client(APP_KEY) as client:
        for _ in range(n):
            await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    log = proxy.app[RECORDER].requests
    assert log is not None
    log.flush()


async def get(
    url: str, key: str | None = ADMIN, headers: dict[str, str] | None = None
) -> tuple[int, str, aiohttp.ClientResponse]:
    headers = {**(headers or {}), **({"Authorization": f"Bearer {key}"} if key else {})}
    async with aiohttp.ClientSession() as s, s.get(url, headers=headers, allow_redirects=False) as r:
        return r.status, await r.text(), r


async def test_every_page_needs_a_key_and_bearer_admin_sees_them(proxy: RunningProxy) -> None:
    await traffic(proxy, 3)
    for path in (
        "/",
        "/requests",
        "/guards",
        "/spend",
        "/backends",
        "/keys",
        "/policy",
        "/requests/1",
        "/capture",
        "/evals",
    ):
        status, _, response = await get(ui(proxy, path), key=None)
        assert status == 303 and "/chaperone/ui/login" in response.headers["Location"], path
        status, _, _ = await get(ui(proxy, path), key="wrong-key-0123456789")
        assert status == 401, path
        status, html, _ = await get(ui(proxy, path))
        assert status == 200, (path, html[:500])
        assert "my secret prompt text" not in html


async def test_overview_counts_the_requests_sent(proxy: RunningProxy) -> None:
    await traffic(proxy, 4)
    _, html, _ = await get(ui(proxy, "/?window=15m"))
    assert re.search(r'id="n-requests">4<', html), html


async def test_refused_requests_count_as_errors(proxy: RunningProxy) -> None:
    await traffic(proxy, 1)
    async with proxy.client("sk-wrong-0123456789") as client:
        with pytest.raises(openai.AuthenticationError):
            await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    await traffic(proxy, 0)
    _, html, _ = await get(ui(proxy, "/?window=15m"))
    assert re.search(r'id="n-requests">2<', html) and re.search(r'id="error-rate">50.0%<', html)
    _, html, _ = await get(ui(proxy, "/requests?status=401"))
    assert html.count('class="req"') == 1 and "invalid_api_key" in html
    seq = re.search(r'class="req">(\d+)<', html)
    assert seq is not None
    status, page, _ = await get(ui(proxy, f"/requests/{seq.group(1)}"))
    assert status == 200 and "refused before the chain ran" in page


async def test_backends_show_circuit_and_recent_traffic(proxy: RunningProxy) -> None:
    await traffic(proxy, 3)
    _, html, _ = await get(ui(proxy, "/backends"))
    assert "closed" in html or "off" in html
    assert re.search(r'class="recent">3 requests, 0.0% errors', html), html


async def test_request_page_has_the_waterfall_and_attempts(proxy: RunningProxy) -> None:
    await traffic(proxy, 1)
    _, html, _ = await get(ui(proxy, "/requests/1"))
    assert "cost · on_complete" in html and "params · on_request" in html
    assert "upstream mock" in html


async def test_changes_need_csrf_and_the_admin_role(proxy: RunningProxy) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
        async with s.post(ui(proxy, "/login"), data={"key": VIEWER, "next": "/keys"}, allow_redirects=False) as r:
            assert r.status == 303
            cookie = r.cookies["chaperone_console"]
            assert cookie["httponly"]
        async with s.post(ui(proxy, "/keys"), data={"name": "x"}) as r:  # no CSRF token
            assert r.status == 403 and "CSRF" in await r.text()
        async with s.get(ui(proxy, "/keys")) as r:
            html = await r.text()
            assert 'id="role">viewer' in html and 'id="create"' not in html
        token = re.search(
            r'name="csrf" (?:value|content)="([0-9a-f]+)"', (await (await s.get(ui(proxy, "/"))).text()) or ""
        )
        assert token is not None
        async with s.post(ui(proxy, "/keys"), data={"name": "x", "csrf": token.group(1)}) as r:
            assert r.status == 403 and "read_only" in await r.text()
        async with s.post(ui(proxy, "/logout"), allow_redirects=False) as r:  # a forged logout
            assert r.status == 403
        async with s.post(ui(proxy, "/logout"), data={"csrf": token.group(1)}, allow_redirects=False) as r:
            assert r.status == 303
        async with s.get(ui(proxy, "/keys"), allow_redirects=False) as r:
            assert r.status == 303  # logged out


async def test_bearer_admin_creates_a_key_without_csrf(proxy: RunningProxy) -> None:
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession() as s, s.post(ui(proxy, "/keys"), data={"name": "app9"}, headers=headers) as r:
        html = await r.text()
    assert r.status == 200 and re.search(r'id="new-key">sk-chp-', html)


async def test_pages_are_bounded(proxy: RunningProxy) -> None:
    await traffic(proxy, 5)
    _, html, _ = await get(ui(proxy, "/requests?limit=2"))
    assert html.count('class="req"') == 2
    older = re.search(r'href="\?([^"]+)" id="older"', html)
    assert older is not None
    _, html2, _ = await get(ui(proxy, "/requests?" + older.group(1).replace("&amp;", "&")))
    assert html2.count('class="req"') == 2
    _, html3, _ = await get(ui(proxy, "/requests?limit=100000"))
    assert html3.count('class="req"') == 5


async def test_off_on_a_public_listener_unless_the_policy_says_so(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    running = await start_proxy(write_policy(simple_policy(mock_upstream.url, extra=EXTRA)), host="0.0.0.0")
    status, body, _ = await get(ui(running, "/"))
    assert status == 403 and "console_disabled" in body


async def test_the_log_never_holds_prompt_text(proxy: RunningProxy, tmp_path: Path) -> None:
    await traffic(proxy, 2)
    files = list((tmp_path / "home" / "console").glob("requests.sqlite*"))
    assert files and all(b"my secret prompt text" not in f.read_bytes() for f in files)


async def test_links_follow_a_forwarded_sub_path(proxy: RunningProxy) -> None:
    await traffic(proxy, 1)
    status, html, _ = await get(ui(proxy, "/requests"), headers={"X-Forwarded-Prefix": "/gw"})
    assert status == 200 and 'href="/gw/chaperone/ui/requests/1"' in html
    status, _, response = await get(ui(proxy, "/"), key=None, headers={"X-Forwarded-Prefix": "/gw"})
    assert response.headers["Location"].startswith("/gw/chaperone/ui/login")


async def test_off_without_an_admin_section(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path], tmp_path: Path
) -> None:
    running = await start_proxy(write_policy(simple_policy(mock_upstream.url)))
    async with running.client() as client:  # nobody could read the log: nothing pays for writing it
        await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    status, body, _ = await get(ui(running, "/"))
    assert status == 403 and "no admin section" in body
    log = running.app[RECORDER].requests
    assert log is not None
    log.flush()
    assert log.page(Filters(), None, 10) == []


async def test_an_unwritable_log_leaves_the_gateway_serving(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path], tmp_path: Path
) -> None:
    (tmp_path / "home").mkdir(exist_ok=True)
    (tmp_path / "home" / "console").write_text("not a directory")
    running = await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=CHAIN, extra=EXTRA)))
    async with running.client(APP_KEY) as client:
        await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    status, body, _ = await get(ui(running, "/"))
    assert status == 503 and "could not be opened" in body
    status, _, _ = await get(ui(running, "/backends"))
    assert status == 200
