"""The policy file's shape: the pydantic models a YAML policy is validated against.

``proxy.policy`` loads a file into ``PolicyFile``, then compiles it; every field here has a
description, and a mistake is reported with its YAML path. Sections owned by other modules
(passthrough, realtime, responses, prices, metrics, access log, store, key limits) bring their own
models; this module only puts them together.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from backends.launch.config import LaunchConfig  # [launcher] pure pydantic; imports nothing of the proxy
from proxy.accesslog import AccessLogConfig
from proxy.conversations import ResponsesConfig
from proxy.limits import KeyLimits
from proxy.metrics import MetricsConfig
from proxy.passthrough import PassthroughConfig, RealtimeConfig, RuleText
from proxy.pricing import PriceConfig
from proxy.store import StoreConfig

__all__ = [
    "AdminConfig",
    "BackendConfig",
    "KeyConfig",
    "Limits",
    "ModelConfig",
    "PolicyFile",
    "bearer",
]




def _empty_is_false(value: Any) -> Any:
    return False if value == "" else value


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BackendConfig(_Strict):
    url: str | None = Field(default=None, description="Base URL of an OpenAI-compatible API, ending in /v1.")
    builtin: Literal["mock"] | None = Field(
        default=None, description="Start a bundled backend instead of naming a URL (mock: the test double)."
    )
    api_key: str | None = Field(default=None, description="Sent upstream as 'Authorization: Bearer …'.")
    timeout_s: float = Field(
        default=60.0,
        gt=0,
        description="Longest wait for the upstream: a whole answer, or a stream's first byte and each gap.",
    )
    connect_timeout_s: float = Field(default=10.0, gt=0, description="Limit for opening a connection.")
    headers: dict[str, str] = Field(default_factory=dict, description="Extra headers sent upstream.")
    max_connections: int = Field(default=1024, ge=1, description="Size of this backend's connection pool.")
    enabled: Annotated[bool, BeforeValidator(_empty_is_false)] = Field(
        default=True, description="A disabled backend is skipped where a route lists alternatives."
    )
    launch: LaunchConfig | None = Field(  # [launcher]
        default=None,
        description="Start this backend's engine (vllm, tgi or llamacpp) with the proxy instead of naming a URL.",
    )
    responses_api: Literal["auto", "native", "translate"] = Field(
        default="auto",
        description="Whether /v1/responses is forwarded as is (native) or translated to chat completions; "
        "auto: native for api.openai.com only.",
    )

    @property
    def speaks_responses(self) -> bool:
        """Whether this backend takes Responses API requests itself (else they are translated to chat)."""
        if self.responses_api == "auto":
            return self.url is not None and re.match(r"^https://api\.openai\.com(/|$)", self.url) is not None
        return self.responses_api == "native"

    @property
    def usable(self) -> bool:  # [launcher]
        """Enabled, and (for an ``optional`` launch block) its engine and model are installed here."""
        if not self.enabled:
            return False
        return self.launch is None or not self.launch.optional or self.launch.missing() is None

    @model_validator(mode="after")
    def _one_target(self) -> BackendConfig:
        if [self.url, self.builtin, self.launch].count(None) != 2:  # [launcher] launch is a third target
            raise ValueError("give exactly one of 'url', 'builtin' and 'launch'")
        if self.url is not None and not re.match(r"^https?://[^/\s]+", self.url):
            raise ValueError(f"url must start with http:// or https:// and name a host, got {self.url!r}")
        return self


class ModelConfig(_Strict):
    backend: str | list[str] = Field(description="Backend name, or a list: the first enabled one is used.")
    model: str | None = Field(default=None, description="The upstream's own name for the model.")
    fallback: list[str] = Field(default_factory=list, description="Models tried in order when this one fails.")


class KeyConfig(_Strict):
    name: str = Field(min_length=1, description="Who holds the key; shows in logs and metrics.")
    key: str = Field(min_length=1, description="The key itself, or 'sha256:<hex>' of it.")
    chain: str | None = Field(default=None, description="Chain for this key's requests (default_chain if unset).")
    models: list[str] | None = Field(default=None, description="Models this key may use (all if unset).")
    passthrough: list[RuleText] | None = Field(
        default=None, description="This key's own passthrough rules, replacing passthrough.allow (see there)."
    )
    limits: KeyLimits | None = Field(
        default=None, description="This key's rate limits and budgets, over the budget plugin's per_key ones."
    )

    @field_validator("key")
    @classmethod
    def _hash_shape(cls, value: str) -> str:
        if value.startswith("sha256:") and not re.fullmatch(r"sha256:[0-9a-fA-F]{64}", value):
            raise ValueError("a sha256: key must be followed by 64 hex digits")
        return value


class AdminConfig(_Strict):
    key: str = Field(
        description="The master key for /chaperone/… and `chaperone keys` (16+ characters), or 'sha256:<hex>' of it.",
    )
    rotation_overlap_s: float = Field(
        default=86400.0,
        ge=0,
        description="After a rotation, how long the old secret of a virtual key keeps working (default 24 h).",
    )

    @field_validator("key")
    @classmethod
    def _strong_or_hashed(cls, value: str) -> str:
        if value.startswith("sha256:"):
            if not re.fullmatch(r"sha256:[0-9a-fA-F]{64}", value):
                raise ValueError("a sha256: key must be followed by 64 hex digits")
        elif len(value) < 16:
            raise ValueError("the admin key must have at least 16 characters")
        return value

    def digest(self) -> bytes:
        """SHA-256 of the admin key, whichever way the policy gave it."""
        if self.key.startswith("sha256:"):
            return bytes.fromhex(self.key.removeprefix("sha256:"))
        return hashlib.sha256(self.key.encode()).digest()

    def accepts(self, authorization: str | None) -> bool:
        """True when ``authorization`` is ``Bearer <admin key>``; compared in constant time."""
        token = bearer(authorization)
        if not token:
            return False
        return hmac.compare_digest(hashlib.sha256(token.encode()).digest(), self.digest())


class Limits(_Strict):
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="Larger request bodies get a 413.")


class PolicyFile(_Strict):
    backends: dict[str, BackendConfig] = Field(description="Where requests can go.")
    models: dict[str, ModelConfig] = Field(description="What clients may ask for, and where it goes.")
    chains: dict[str, list[Any]] = Field(default_factory=lambda: {"default": []}, description="Ordered plugins.")
    keys: list[KeyConfig] | None = Field(default=None, description="Client keys; omit to run open.")
    default_chain: str = Field(default="default", description="Chain for requests without a key's own.")
    store: StoreConfig = Field(default_factory=StoreConfig, description="Shared state: diskcache or redis.")
    limits: Limits = Field(default_factory=Limits, description="Request limits.")
    admin: AdminConfig | None = Field(
        default=None,
        description="The admin API and virtual keys; with it the proxy is never open. Omit to refuse admin paths.",
    )
    passthrough: PassthroughConfig = Field(
        default_factory=PassthroughConfig, description="Which other /v1 paths are forwarded without the chain."
    )
    responses: ResponsesConfig = Field(
        default_factory=ResponsesConfig, description="Responses API: stored responses and previous_response_id."
    )
    prices: dict[str, PriceConfig] = Field(
        default_factory=dict, description="USD per 1M tokens per model, over the built-in table (proxy/pricing.py)."
    )
    realtime: RealtimeConfig = Field(
        default_factory=RealtimeConfig,
        description="Realtime API WebSocket sessions (GET /v1/realtime, allowed by a 'WS /realtime' rule): limits.",
    )
    metrics: MetricsConfig = Field(  # [metrics]
        default_factory=MetricsConfig, description="Prometheus /metrics: on or off, plugin timing, who may scrape."
    )
    access_log: AccessLogConfig = Field(  # [metrics]
        default_factory=AccessLogConfig, description="What the JSON access log may hold (CHAPERONE_ACCESS_LOG)."
    )


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None
