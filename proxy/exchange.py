"""One request's context (``Exchange``) and the typed per-plugin stash it carries."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

import orjson

if TYPE_CHECKING:
    from proxy.chain import Chain
    from proxy.policy import Caller, Policy, Route
    from proxy.subcall import Subcaller, SubcallRecord

T = TypeVar("T")


class StashKey(Generic[T]):
    """A typed key for ``Exchange.stash``; define one at module level per plugin datum."""

    __slots__ = ()


class Stash:
    """Plugin-private, per-request data, keyed by ``StashKey`` objects so plugins never collide."""

    __slots__ = ("_data",)

    def __init__(self) -> None:
        self._data: dict[StashKey[Any], object] = {}

    def __setitem__(self, key: StashKey[T], value: T) -> None:
        self._data[key] = value

    def __getitem__(self, key: StashKey[T]) -> T:
        return cast(T, self._data[key])

    def get(self, key: StashKey[T], default: T | None = None) -> T | None:
        return cast("T | None", self._data.get(key, default))

    def setdefault(self, key: StashKey[T], default: T) -> T:
        return cast(T, self._data.setdefault(key, default))

    def __delitem__(self, key: StashKey[T]) -> None:
        del self._data[key]

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __len__(self) -> int:
        return len(self._data)


@dataclass(slots=True)
class ApiRequest:
    """The client's request as the chain sees it.

    ``body`` is the client's JSON kept as-is, so fields Chaperone does not know pass through.
    ``headers`` are the client's headers minus hop-by-hop and credentials; plugins may edit them
    and they are sent upstream.
    """

    endpoint: str  # "chat", "completions", "embeddings", "responses", "messages"
    path: str  # upstream path below the backend's base URL, e.g. "/chat/completions"
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # the client's bytes, forwarded as-is while no plugin could have edited ``body``
    size: int | None = None  # the client's body length in bytes: a hint that outlives ``raw`` (edits may change it)

    @property
    def model(self) -> str:
        return cast(str, self.body.get("model", ""))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return cast("list[dict[str, Any]]", self.body.get("messages") or [])

    @property
    def stream(self) -> bool:
        return self.body.get("stream") is True


@dataclass(slots=True)
class ApiResponse:
    """What flows back to the client: a JSON body, or a stream of raw SSE bytes.

    Exactly one of ``body``/``raw`` and ``stream`` is set. ``stream`` yields the upstream's bytes
    unchanged, cut only at event boundaries; the server parses them only when a plugin hooks
    ``on_chunk``. ``headers`` are response headers to pass on (hop-by-hop already removed).
    """

    status: int = 200
    body: dict[str, Any] | None = None
    stream: AsyncIterator[bytes] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    source: str = "upstream"  # "upstream", or the name of the plugin that answered early
    raw: bytes | None = None  # the upstream's JSON bytes, sent as-is while ``body`` was never parsed
    _peeked: tuple[bytes, dict[str, Any] | None] | None = field(default=None, init=False, repr=False, compare=False)

    def json(self) -> dict[str, Any]:
        """The JSON body, parsed from ``raw`` on first use (plugins that edit it call this)."""
        if self.body is None:
            parsed = json.loads(self.raw) if self.raw else {}
            self.body = parsed if isinstance(parsed, dict) else {"data": parsed}
        return self.body

    def peek(self) -> dict[str, Any] | None:
        """The JSON body to read, not to edit: ``body``, else ``raw`` parsed once for every reader (the
        cost, budget and cache plugins and the handler all read the same answer) while ``raw`` stays what
        is sent. None when there is no body or it is not a JSON object."""
        if self.body is not None:
            return self.body
        raw = self.raw
        if not raw:
            return None
        peeked = self._peeked
        if peeked is None or peeked[0] is not raw:
            try:
                value = orjson.loads(raw)
            except orjson.JSONDecodeError:
                value = None
            peeked = self._peeked = (raw, value if isinstance(value, dict) else None)
        return peeked[1]


@dataclass(slots=True)
class Usage:
    """Token counts as the upstream reported them, in OpenAI's chat names.

    ``prompt_tokens`` includes ``cached_tokens`` (prompt tokens served from the upstream's prompt cache,
    billed at the cached rate); ``completion_tokens`` includes ``reasoning_tokens``.
    """

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    @classmethod
    def from_openai(cls, usage: object) -> Usage | None:
        """From a ``usage`` object in chat names, or in Responses / Anthropic names (input/output tokens)."""
        if not isinstance(usage, dict):
            return None
        anthropic_cached = usage.get("cache_read_input_tokens") or 0
        anthropic_written = usage.get("cache_creation_input_tokens") or 0
        if "prompt_tokens" in usage:
            prompt = usage.get("prompt_tokens") or 0
        else:  # Anthropic counts cache reads and writes apart from input_tokens; OpenAI's Responses does not
            given = usage.get("input_tokens") or 0
            prompt = given + _int(anthropic_cached) + _int(anthropic_written) if isinstance(given, int) else given
        completion = usage.get("completion_tokens") or usage.get("output_tokens") or 0
        if not (isinstance(prompt, int) and isinstance(completion, int)):
            return None  # an upstream sending strings or floats: no usage rather than a wrong one
        total = usage.get("total_tokens") or (prompt + completion)
        if not isinstance(total, int):
            return None
        in_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
        out_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
        cached = _int(in_details.get("cached_tokens")) if isinstance(in_details, dict) else _int(anthropic_cached)
        reasoning = _int(out_details.get("reasoning_tokens")) if isinstance(out_details, dict) else 0
        return cls(prompt, completion, total, min(cached, prompt), min(reasoning, completion))


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


OWN_LOOP = StashKey[bool]()
"""[reliability] Set by whoever walks retries and fallbacks itself (the ``retry`` plugin, sub-calls): the
innermost step (``backends.router``) then makes one attempt on ``exchange.route`` per call."""


@dataclass(slots=True)
class Attempt:
    """One upstream call: which backend, how it ended, how long it took."""

    backend: str
    model: str
    started: float
    ended: float | None = None
    status: int | None = None
    error: str | None = None


@dataclass(slots=True)
class Exchange:
    """One request in flight. Created by the server, passed explicitly, never kept after the request.

    ``policy``, ``chain`` and ``route`` are read-only for plugins. Plugins keep their own data in
    ``stash`` under a module-level ``StashKey``; they never add attributes.
    """

    request_id: str
    policy: Policy
    chain: Chain
    route: Route
    request: ApiRequest
    caller: Caller
    deadline: float
    started: float = field(default_factory=time.monotonic)
    response: ApiResponse | None = None
    error: BaseException | None = None
    attempts: list[Attempt] = field(default_factory=list)
    usage: Usage | None = None
    response_model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    stash: Stash = field(default_factory=Stash)
    entered: int = 0  # how many chain steps the request entered (set by the chain runner)
    subcaller: Subcaller | None = None  # set by the server; plugins call ``subcall``
    subcalls: list[SubcallRecord] = field(default_factory=list)  # sub-calls made for this request, with usage
    stream_idle: frozenset[int] = frozenset()  # ids of plugins with nothing to do on this request's stream
    cost_usd: float | None = None  # what the request cost, once known (set by the ``cost`` plugin or ``budget``)
    verdicts: dict[str, str] = field(default_factory=dict)  # plugin name → short outcome ("hit", "rejected")

    def remaining_s(self) -> float:
        """Seconds left before this request's deadline (may be negative)."""
        return self.deadline - time.monotonic()

    def skip_stream_hooks(self, plugin: object) -> None:
        """Say that ``plugin`` has nothing to do on this request's stream (call it from ``on_response``).

        Its ``on_chunk`` and ``on_stream_end`` are then not called for this request; when no step is left
        that wants chunks, the proxy passes the upstream's bytes through without parsing them.
        """
        self.stream_idle = self.stream_idle | {id(plugin)}

    async def subcall(self, model: str, body: dict[str, Any], *, timeout_s: float | None = None) -> dict[str, Any]:
        """Ask the policy's route ``model`` for a chat completion (``body`` without ``model``); the answer's JSON.

        The call uses that route's backend and its fallbacks, within this request's deadline (and
        ``timeout_s`` when shorter), without running this chain again; its usage is recorded in
        ``subcalls``. Raises an ``UpstreamError`` when every route failed.
        """
        if self.subcaller is None:
            from proxy.subcall import SubcallFailed

            raise SubcallFailed("sub-calls are not available for this request")
        return await self.subcaller(self, model, body, timeout_s)
