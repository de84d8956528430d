"""``chaperone launch … --register URL``: announce a launched engine to a running proxy, and take it back.

The proxy's admin API (``proxy.engines_api``) takes ``POST /chaperone/engines`` with the engine's name,
base URL, served model names and key, and ``DELETE /chaperone/engines/{name}``. ``check`` runs before
the engine starts, so an unreachable proxy or a wrong admin key fails at once; ``register`` is
idempotent (200 when the proxy already has it), so the launcher repeats it as a heartbeat and a
restarted proxy, which forgot every registration, gets it back within one interval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

__all__ = ["RegisterError", "Registrar", "default_name", "proxy_root"]


class RegisterError(Exception):
    """The proxy could not be reached, refused the admin key or refused the registration (a clear message)."""


def proxy_root(url: str) -> str:
    """The proxy's root URL from what a user may type: ``http://host:8080``, ``…/``, ``…/v1``."""
    url = url.strip().rstrip("/")
    return url.removesuffix("/v1") if url.endswith("/v1") else url


def default_name(engine: str, model: str) -> str:
    """``vllm-llama`` for ``vllm`` serving ``llama``: a backend name the proxy accepts."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", f"{engine}-{model}").strip("-._")[:64]


@dataclass
class Registrar:
    """One engine's registration with one proxy."""

    proxy: str  # the proxy's root URL
    admin_key: str | None
    name: str
    url: str  # the engine's base URL (…/v1)
    models: list[str]
    api_key: str | None = None
    timeout_s: float = 10.0

    @property
    def endpoint(self) -> str:
        return f"{self.proxy}/chaperone/engines"

    async def check(self) -> None:
        """Reach the proxy and prove the admin key (``GET /chaperone/engines``); ``RegisterError`` if not."""
        await self._call("GET", self.endpoint)

    async def register(self) -> bool:
        """POST the registration; True when the proxy took it anew (201), False when it already had it."""
        body = {"name": self.name, "url": self.url, "models": self.models, "api_key": self.api_key}
        status = await self._call("POST", self.endpoint, body)
        return status == 201

    async def unregister(self) -> None:
        """DELETE the registration; an engine the proxy no longer knows counts as done."""
        await self._call("DELETE", f"{self.endpoint}/{self.name}", missing_ok=True)

    async def _call(
        self, method: str, url: str, body: dict[str, Any] | None = None, *, missing_ok: bool = False
    ) -> int:
        headers = {"authorization": f"Bearer {self.admin_key}"} if self.admin_key else {}
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        try:
            async with aiohttp.ClientSession(timeout=timeout) as session:
                data = orjson.dumps(body) if body is not None else None
                if data is not None:
                    headers["content-type"] = "application/json"
                async with session.request(method, url, data=data, headers=headers) as resp:
                    raw = await resp.read()
                    if resp.status < 300 or (missing_ok and resp.status == 404):
                        return resp.status
                    raise RegisterError(f"{method} {url}: {resp.status} {_message(raw)}{_hint(resp.status)}")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RegisterError(f"cannot reach the proxy at {self.proxy}: {exc or type(exc).__name__}") from None


def _message(raw: bytes) -> str:
    """The OpenAI-shaped error's message, else the start of the body."""
    try:
        error = orjson.loads(raw).get("error") or {}
        return str(error.get("message") or raw[:200].decode(errors="replace"))
    except (ValueError, AttributeError):
        return raw[:200].decode(errors="replace")


def _hint(status: int) -> str:
    if status == 401:
        return " (pass the proxy's admin key with --register-key or CHAPERONE_ADMIN_KEY)"
    if status == 404:
        return " (is that a Chaperone proxy with the engines API?)"
    return ""
