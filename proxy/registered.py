"""Engines registered at run time (``POST /chaperone/engines``): their shape and how they join a policy.

A registration names an OpenAI-compatible engine (``chaperone launch … --register URL`` sends one once
its engine serves). The runtime keeps the registrations and merges them into every policy it activates,
so a hot reload keeps them: each becomes a backend (``type: openai`` at its ``url``) and one model
route per served name. A name that is already the policy's (a backend, or a model routed elsewhere)
is a clash: refused when registering, and skipped with a warning when a reloaded policy takes it.

Registrations live in the memory of one proxy process: they are not written to the store, so a
restarted proxy has none (the launcher registers again) and ``serve --workers N`` refuses them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from proxy.policy import BackendConfig, Policy, Route

__all__ = ["EngineClash", "Registration", "clash", "merge"]


class EngineClash(ValueError):
    """A registration whose name or models the policy (or another registration) already uses."""


class Registration(BaseModel):
    """The body of ``POST /chaperone/engines``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
        description="The backend's name in the proxy (letters, digits, '.', '_', '-'; up to 64).",
    )
    url: str = Field(
        pattern=r"^https?://[^/\s]+\S*$", description="The engine's OpenAI-compatible base URL, ending in /v1."
    )
    models: tuple[str, ...] = Field(min_length=1, description="The model names the engine serves; one route each.")
    api_key: str | None = Field(default=None, description="Sent to the engine as 'Authorization: Bearer …'.")

    @field_validator("url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("models")
    @classmethod
    def _model_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not name.strip() or name == "*" or re.search(r"\s", name):
                raise ValueError(f"{name!r} is not a model name (no spaces, not '*')")
        if len(set(value)) != len(value):
            raise ValueError("each model name once")
        return value

    def backend(self) -> BackendConfig:
        return BackendConfig(type="openai", url=self.url, api_key=self.api_key)

    def view(self) -> dict[str, Any]:
        """What the admin API shows: never the engine's key, only whether one is set."""
        return {"name": self.name, "url": self.url, "models": list(self.models), "api_key": self.api_key is not None}


def clash(
    backends: Mapping[str, object], routes: Mapping[str, Route], reg: Registration, registered: Mapping[str, object]
) -> str | None:
    """Why ``reg`` cannot join a policy with these backends and routes (``registered``: names already merged)."""
    if reg.name in backends and reg.name not in registered:
        return f"the policy already has a backend named {reg.name!r}"
    for model in reg.models:
        route = routes.get(model)
        if route is not None and route.backend != reg.name:
            return f"the model {model!r} already routes to backend {route.backend!r}"
    return None


def merge(
    policy: Policy, registrations: Mapping[str, Registration]
) -> tuple[Policy, dict[str, Registration], list[str]]:
    """The policy with the registrations that fit: (merged policy, those merged, why the others were not)."""
    if not registrations:
        return policy, {}, []
    backends: dict[str, BackendConfig] = dict(policy.backends)
    routes: dict[str, Route] = dict(policy.routes)
    merged: dict[str, Registration] = {}
    skipped: list[str] = []
    for reg in registrations.values():
        problem = clash(backends, routes, reg, merged)
        if problem is not None:
            skipped.append(f"engine {reg.name!r} left out: {problem}")
            continue
        backends[reg.name] = reg.backend()
        for model in reg.models:
            routes[model] = Route(model, reg.name, None)
        merged[reg.name] = reg
    return replace(policy, backends=backends, routes=routes), merged, skipped
