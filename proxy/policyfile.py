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

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from proxy.accesslog import AccessLogConfig
from proxy.conversations import ResponsesConfig
from proxy.launchconfig import LaunchConfig  # [launcher]
from proxy.limits import KeyLimits
from proxy.metrics import MetricsConfig
from proxy.passthrough import PassthroughConfig, RealtimeConfig, RuleText
from proxy.pricing import PriceConfig
from proxy.store import StoreConfig

__all__ = [
    "AdminConfig",
    "BackendConfig",
    "BalanceConfig",
    "CircuitConfig",
    "HealthConfig",
    "HedgeConfig",
    "KeyConfig",
    "Limits",
    "ModelConfig",
    "PolicyFile",
    "SplitEntry",
    "bearer",
]


def _empty_is_false(value: Any) -> Any:
    return False if value == "" else value


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---- [balance] replicas, canary splits and hedging (backends/pool.py, canary.py, hedge.py) ----


def _check_url(url: str) -> str:
    if not re.match(r"^https?://[^/\s]+", url):
        raise ValueError(f"url must start with http:// or https:// and name a host, got {url!r}")
    return url


class BalanceConfig(_Strict):
    strategy: Literal["round_robin", "weighted", "least_outstanding", "ewma"] = Field(
        default="round_robin",
        description="How a request picks a replica: in turn, by weight, the one with fewest requests in flight, "
        "or the lowest latency (EWMA of time to headers, times requests in flight).",
    )
    weights: list[Annotated[float, Field(ge=0)]] | None = Field(
        default=None, description="For 'weighted': one weight per url (or per backend of a model route), in order."
    )
    eject_after: int = Field(
        default=3, ge=1, description="Consecutive failures (connect errors, timeouts, 5xx) that eject a replica."
    )
    eject_s: float = Field(default=30.0, gt=0, description="How long an ejected replica gets no requests.")
    ewma_alpha: float = Field(
        default=0.3, gt=0, le=1, description="For 'ewma': weight of the newest latency sample (0 < alpha <= 1)."
    )


class HealthConfig(_Strict):
    path: str | None = Field(
        default=None,
        description="What to poll: a path on the replica's host ('/health'), or unset for '<url>/models'.",
    )
    interval_s: float = Field(default=5.0, gt=0, description="Seconds between two checks of every replica.")
    timeout_s: float = Field(default=2.0, gt=0, description="A check slower than this fails.")

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise ValueError("path must start with '/' (it is taken on the replica's host)")
        return value


_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 token
_BREAKS = re.compile(r"[\r\n\x00]")


class SplitEntry(_Strict):
    backend: str | None = Field(default=None, description="Backend of this variant (default: the route's backend).")
    model: str | None = Field(default=None, description="Upstream model of this variant (default: the route's).")
    weight: float = Field(ge=0, description="Share of the traffic (relative to the other weights; 0 turns it off).")
    name: str | None = Field(
        default=None,
        description="Label in x-chaperone-variant, logs and traces (default: this entry's model, else its backend, "
        "else the route's model or backend).",
    )


class HedgeConfig(_Strict):
    after_ms: float = Field(
        gt=0, description="Send a second attempt to another replica when the first has not answered by then."
    )


# ---- [/balance] ----


# [reliability] the circuit breaker of one backend (proxy/circuit.py) and its API keys (backends/credentials.py)
class CircuitConfig(_Strict):
    enabled: bool | Literal["auto"] = Field(
        default="auto",
        description="Whether this backend has a circuit breaker; auto: when some model route falls back from it.",
    )
    failures: int = Field(default=5, ge=1, description="Consecutive failed attempts that open the circuit.")
    timeouts: int = Field(
        default=1, ge=1, description="Consecutive timed-out attempts that open the circuit (a hang costs this many)."
    )
    failure_rate: float | None = Field(
        default=0.5, gt=0, le=1, description="Share of failed attempts over window_s that opens it (null: off)."
    )
    window_s: float = Field(default=30.0, gt=0, description="The window failure_rate is measured over.")
    min_requests: int = Field(default=20, ge=1, description="Attempts in the window before failure_rate applies.")
    cooldown_s: float = Field(default=10.0, gt=0, description="How long an open circuit refuses before a probe.")
    max_cooldown_s: float = Field(
        default=120.0, gt=0, description="Each failed probe doubles the cool-down, up to this."
    )
    sync_s: float = Field(
        default=1.0, ge=0, description="How often a replica reads the shared state from the store (0: every attempt)."
    )


class BackendConfig(_Strict):
    # [providers] ``type`` names the factory that builds the backend (proxy.backend.Wiring); checked at activation.
    type: str = Field(
        default="openai",
        pattern=r"^[a-z][a-z0-9_-]*$",
        description="The API the upstream speaks: openai (OpenAI-compatible, the default) or a provider adapter "
        "(anthropic: the Messages API).",
    )
    url: str | None = Field(
        default=None,
        description="Base URL: of an OpenAI-compatible API, ending in /v1; of a provider, its API root "
        "(anthropic: default https://api.anthropic.com).",
    )
    builtin: Literal["mock"] | None = Field(
        default=None, description="Start a bundled backend instead of naming a URL (mock: the test double)."
    )
    api_key: str | None = Field(
        default=None, description="Sent upstream as 'Authorization: Bearer …' (anthropic: as 'x-api-key')."
    )
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
    api_keys: list[str] = Field(  # [reliability]
        default_factory=list,
        description="Several keys (from ${ENV} variables), rotated per request; on a 401/429 the next key is "
        "tried and the failing one rested. Instead of api_key.",
    )
    key_rest_s: float = Field(  # [reliability]
        default=60.0, gt=0, description="How long a key that answered 401/429 is left out of the rotation."
    )
    circuit: CircuitConfig = Field(  # [reliability]
        default_factory=CircuitConfig, description="Circuit breaker: stop calling a failing backend for a while."
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
    # [balance] replicas of this backend (backends/pool.py)
    urls: list[Annotated[str, AfterValidator(_check_url)]] | None = Field(
        default=None, min_length=1, description="Several base URLs of replicas of one backend (instead of 'url')."
    )
    balance: BalanceConfig = Field(
        default_factory=BalanceConfig, description="With 'urls': how requests are spread and replicas ejected."
    )
    health: HealthConfig | None = Field(
        default=None, description="With 'urls': poll every replica in the background; failing ones get no requests."
    )
    # [/balance]

    @field_validator("headers")
    @classmethod
    def _sendable_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{name!r} is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)")
            if _BREAKS.search(text):
                raise ValueError(f"the value of {name!r} holds a line break or NUL, which no header can carry")
        return value

    @field_validator("api_key")
    @classmethod
    def _one_line_key(cls, value: str | None) -> str | None:
        if value is not None and _BREAKS.search(value):
            raise ValueError("the key holds a line break (read from a file with its newline?): it cannot be sent")
        return value

    @field_validator("api_keys")
    @classmethod
    def _one_line_keys(cls, value: list[str]) -> list[str]:
        for n, key in enumerate(value):
            if _BREAKS.search(key):
                raise ValueError(f"key {n} holds a line break (read from a file with its newline?): it cannot be sent")
        return value

    @property
    def speaks_responses(self) -> bool:
        """Whether this backend takes Responses API requests itself (else they are translated to chat)."""
        if self.type != "openai":  # [providers]
            return False
        if self.responses_api == "auto":
            url = self.url or (self.urls[0] if self.urls else None)  # [balance]
            return url is not None and re.match(r"^https://api\.openai\.com(/|$)", url) is not None
        return self.responses_api == "native"

    @property
    def usable(self) -> bool:  # [launcher]
        """Enabled, and (for an ``optional`` launch block) its engine and model are installed here."""
        if not self.enabled:
            return False
        return self.launch is None or not self.launch.optional or self.launch.missing() is None

    @model_validator(mode="after")
    def _one_target(self) -> BackendConfig:
        given = 4 - [self.url, self.urls, self.builtin, self.launch].count(None)  # [balance] urls, [launcher]
        if given > 1 or (given == 0 and self.type == "openai"):  # [providers] a provider has a default url
            raise ValueError("give exactly one of 'url', 'urls', 'builtin' and 'launch'")
        if self.builtin is not None and self.type != "openai":
            raise ValueError(f"builtin backends speak the OpenAI API: drop 'type: {self.type}' or 'builtin'")
        if self.balance.weights is not None and self.urls is not None and len(self.balance.weights) != len(self.urls):
            raise ValueError(f"balance.weights has {len(self.balance.weights)} entries for {len(self.urls)} urls")
        if self.urls is None and ("balance" in self.model_fields_set or self.health is not None):
            raise ValueError("'balance' and 'health' apply to replicas: give 'urls' instead of 'url'")
        if self.api_key and self.api_keys:  # [reliability]
            raise ValueError("give either 'api_key' or 'api_keys', not both")
        if any(not key for key in self.api_keys):  # [reliability]
            raise ValueError("api_keys: an entry is empty (is its environment variable set?)")
        if self.url is not None and not re.match(r"^https?://[^/\s]+", self.url):
            raise ValueError(f"url must start with http:// or https:// and name a host, got {self.url!r}")
        return self


class ModelConfig(_Strict):
    backend: str | list[str] | None = Field(
        default=None,
        description="Backend name, or a list: the first enabled one is used (all of them, with 'balance').",
    )
    model: str | None = Field(default=None, description="The upstream's own name for the model.")
    fallback: list[str] = Field(default_factory=list, description="Models tried in order when this one fails.")
    # [balance] spreading, canary and hedging (backends/canary.py, backends/hedge.py)
    balance: BalanceConfig | None = Field(
        default=None, description="With a list of backends: spread requests over the enabled ones by this strategy."
    )
    split: list[SplitEntry] | None = Field(
        default=None,
        min_length=1,
        description="Canary / A-B: variants (backend and/or upstream model) sharing the traffic by weight.",
    )
    sticky: Literal["user", "key", "none"] = Field(
        default="user",
        description="What keeps a client on one split variant: the request's 'user' field (else the API key), "
        "the API key, or nothing (each request on its own).",
    )
    hedge: HedgeConfig | None = Field(
        default=None, description="Hedging: a second attempt to another replica of the backend after a delay."
    )

    @model_validator(mode="after")
    def _has_backend(self) -> ModelConfig:
        if self.backend is None and (self.split is None or any(entry.backend is None for entry in self.split)):
            raise ValueError("give 'backend' (or a backend on every 'split' entry)")
        if self.split is not None and self.balance is not None:
            raise ValueError("give either 'split' or 'balance', not both")
        return self

    # [/balance]


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


# [console] the web console at /chaperone/ui (console/): who may see it
class ConsoleConfig(_Strict):
    enabled: bool | None = Field(
        default=None,
        description="Serve the console. Default: on for a loopback listener when the policy has an admin section; "
        "on any other listener only when true (and it then needs an admin section).",
    )
    viewer_keys: list[str] = Field(
        default_factory=list,
        description="Keys (16+ characters, or 'sha256:<hex>') that may log in read-only; the admin key may change.",
    )
    session_ttl_s: float = Field(default=8 * 3600, gt=0, description="How long a console login lasts.")
    step_timing: bool = Field(
        default=True, description="Time every plugin hook, so a request's console page shows each step's time."
    )

    @field_validator("viewer_keys")
    @classmethod
    def _viewer_keys(cls, values: list[str]) -> list[str]:
        for value in values:
            AdminConfig._strong_or_hashed(value)
        return values

    def viewer(self, token: str | None) -> bool:
        """True when ``token`` is one of the viewer keys (constant-time compare of SHA-256 digests)."""
        if not token:
            return False
        digest = hashlib.sha256(token.encode()).digest()
        found = False
        for key in self.viewer_keys:
            want = bytes.fromhex(key[7:]) if key.startswith("sha256:") else hashlib.sha256(key.encode()).digest()
            found |= hmac.compare_digest(digest, want)
        return found


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
    console: ConsoleConfig = Field(  # [console]
        default_factory=ConsoleConfig, description="The web console (/chaperone/ui): on or off, viewer keys."
    )


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None
