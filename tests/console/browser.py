"""A headless Debian ``chromium`` driven over the DevTools protocol (aiohttp WebSocket; nothing downloaded)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import shutil
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-extensions", "--disable-dev-shm-usage", "--remote-debugging-port=0",
)  # fmt: skip


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Page:
    """One tab: navigate, run script, wait for the next load, screenshot."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, session: str, browser: Browser) -> None:
        self.ws, self.session, self.browser = ws, session, browser

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        return await self.browser.send(method, session=self.session, **params)

    async def goto(self, url: str) -> None:
        await self.until_load(self.send("Page.navigate", url=url))

    async def until_load(self, action: Any) -> None:
        """Run ``action`` (an awaitable) and wait for the page load it causes."""
        loaded = self.browser.expect("Page.loadEventFired", self.session)
        await action
        await asyncio.wait_for(loaded, 15)

    async def eval(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def submit(self, selector: str) -> None:
        """Submit a form (by clicking its button, as a person would) and wait for the next page."""
        js = f"document.querySelector({selector!r}).requestSubmit()"
        await self.until_load(self.eval(js))

    async def text(self, selector: str = "body") -> str:
        return str(await self.eval(f"(document.querySelector({selector!r}) || {{innerText: ''}}).innerText"))

    async def screenshot(self, path: Path) -> None:
        shot = await self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        await asyncio.to_thread(_write, path, base64.b64decode(shot["data"]))


class Browser:
    """The chromium process and its DevTools connection (one WebSocket, flat sessions per tab)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._waiters: list[tuple[str, str | None, asyncio.Future[dict[str, Any]]]] = []
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = message.json()
            if "id" in data and data["id"] in self._pending:
                future = self._pending.pop(data["id"])
                if "error" in data:
                    future.set_exception(AssertionError(f"DevTools error: {data['error']}"))
                else:
                    future.set_result(data.get("result", {}))
                continue
            for waiter in list(self._waiters):
                method, session, future = waiter
                if data.get("method") == method and session in (None, data.get("sessionId")) and not future.done():
                    future.set_result(data.get("params", {}))
                    self._waiters.remove(waiter)

    def expect(self, method: str, session: str | None = None) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters.append((method, session, future))
        return future

    async def send(self, method: str, *, session: str | None = None, **params: Any) -> dict[str, Any]:
        ident = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[ident] = future
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        await self.ws.send_json(message)
        return await asyncio.wait_for(future, 15)

    async def new_page(self) -> Page:
        target = await self.send("Target.createTarget", url="about:blank")
        attached = await self.send("Target.attachToTarget", targetId=target["targetId"], flatten=True)
        page = Page(self.ws, attached["sessionId"], self)
        await page.send("Page.enable")
        await page.send("Runtime.enable")
        return page

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Start a fresh headless chromium (its own profile directory) and connect to it."""
    path = chromium_path()
    assert path is not None, "chromium is not installed (apt-get install -y chromium)"
    with tempfile.TemporaryDirectory(prefix="chaperone-chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            path, *FLAGS, f"--user-data-dir={profile}", "about:blank",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        try:
            url = await asyncio.wait_for(_devtools_url(proc), 30)
            async with aiohttp.ClientSession() as http, http.ws_connect(url, max_msg_size=64 * 1024 * 1024) as ws:
                browser = Browser(ws)
                try:
                    yield browser
                finally:
                    await browser.close()
        finally:
            if proc.returncode is None:
                proc.kill()
            await proc.wait()


async def _devtools_url(proc: asyncio.subprocess.Process) -> str:
    assert proc.stderr is not None
    while True:
        line = await proc.stderr.readline()
        if not line:
            raise AssertionError("chromium exited before it listened for DevTools")
        text = line.decode(errors="replace").strip()
        if text.startswith("DevTools listening on "):
            _DRAINS.add(asyncio.ensure_future(_drain(proc.stderr)))
            return text.removeprefix("DevTools listening on ")


_DRAINS: set[asyncio.Future[None]] = set()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


async def _drain(stream: asyncio.StreamReader) -> None:
    while await stream.read(65536):
        pass
