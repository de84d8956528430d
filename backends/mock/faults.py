"""Fault specs: parse ``KEY=VALUE,...`` strings from prompts, headers and config, merge them, count retries.

Syntax (keys are case-insensitive, ``-`` and ``_`` are interchangeable, items are comma-separated):

    status=CODE          answer with this HTTP status (400-599) and an OpenAI-shaped error body
    retry_after=S        add ``Retry-After: S`` (defaults to 1 for 429 and 503)
    latency_ms=N         wait N ms before the response headers
    chunk_delay_ms=N     wait N ms between stream chunks
    drop_after=N         stream: send N chunks, then close the socket without ``[DONE]``;
                         non-stream: close the socket without any response
    hang                 never answer; wait until the client goes away
    cut_body             non-stream: send the headers and half the JSON body, then reset the connection
    tokens=N             the completion is exactly N pieces long
    fail_times=N         only the first N requests with this exact spec fail (status/hang/drop_after)
    flag                 moderations: flag the input
    bad_json             chat: JSON-mode content and tool arguments are not JSON (prose around a cut document)
    wrong_json           chat: they are JSON that breaks the schema (``{"mock_wrong": true}``)
    fence_json           chat: JSON-mode content comes inside a markdown ```json fence
                         (bad_json and wrong_json are failures: ``fail_times`` limits them)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

MAGIC = re.compile(r"\[\[mock:([^\]]*)\]\]")
MAGIC_MARKER = "[[mock:"
HEADER_PREFIX = "x-mock-"

_INT_KEYS = frozenset({"status", "drop_after", "tokens", "fail_times"})
_FLOAT_KEYS = frozenset({"retry_after", "latency_ms", "chunk_delay_ms"})
_FLAG_KEYS = frozenset({"hang", "flag", "cut_body", "bad_json", "wrong_json", "fence_json"})  # [verify] the *_json keys
KNOWN_KEYS = tuple(sorted(_INT_KEYS | _FLOAT_KEYS | _FLAG_KEYS))
_TRUE = frozenset({"", "1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


class FaultSpecError(ValueError):
    """A fault spec that does not parse; ``key`` names the offending key."""

    def __init__(self, message: str, key: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """What to do to one request. ``None`` / ``False`` means "not set" so specs can be layered."""

    status: int | None = None
    retry_after: float | None = None
    latency_ms: float | None = None
    chunk_delay_ms: float | None = None
    drop_after: int | None = None
    hang: bool = False
    tokens: int | None = None
    fail_times: int | None = None
    flag: bool = False
    bad_json: bool = False  # [verify] malformed JSON answers, for schema repair tests
    wrong_json: bool = False  # [verify]
    fence_json: bool = False  # [verify]
    cut_body: bool = False  # [reliability] a reset mid-body

    @property
    def fails(self) -> bool:
        """Whether the spec makes the request fail (the part ``fail_times`` limits)."""
        return (
            self.status is not None or self.hang or self.drop_after is not None or self.cut_body
            or self.bad_json or self.wrong_json
        )  # fmt: skip

    def merged(self, override: FaultSpec | None) -> FaultSpec:
        """Return this spec with every field that ``override`` sets replaced."""
        if override is None:
            return self
        changes = {f.name: value for f in fields(override) if _is_set(value := getattr(override, f.name))}
        return replace(self, **changes) if changes else self

    def canonical(self) -> str:
        """A stable ``key=value`` string: the identity ``fail_times`` counts under."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if _is_set(value):
                parts.append(f.name if value is True else f"{f.name}={value}")
        return ",".join(parts)

    def without_failures(self) -> FaultSpec:
        """The same spec with the failure modes removed (used once ``fail_times`` is spent)."""
        cleared = {"bad_json": False, "wrong_json": False, "cut_body": False}  # [verify] [reliability]
        return replace(self, status=None, retry_after=None, hang=False, drop_after=None, **cleared)


def _is_set(value: object) -> bool:
    return value is not None and value is not False


def parse_fault(spec: str) -> FaultSpec:
    """Parse ``KEY=VALUE,KEY`` into a :class:`FaultSpec`; raise :class:`FaultSpecError` naming the bad key."""
    values: dict[str, Any] = {}
    for item in spec.split(","):
        if not item.strip():
            continue
        raw_key, _, raw = item.partition("=")
        key = raw_key.strip().lower().replace("-", "_")
        values[key] = _parse_value(key, raw.strip())
    _check_ranges(values)
    return FaultSpec(**values)


def _parse_value(key: str, raw: str) -> Any:
    if key in _FLAG_KEYS:
        if raw.lower() in _TRUE:
            return True
        if raw.lower() in _FALSE:
            return False
        raise FaultSpecError(f"fault key {key!r} takes no value or a boolean, got {raw!r}", key)
    if key in _INT_KEYS:
        try:
            return int(raw)
        except ValueError:
            raise FaultSpecError(f"fault key {key!r} needs an integer, got {raw!r}", key) from None
    if key in _FLOAT_KEYS:
        try:
            return float(raw)
        except ValueError:
            raise FaultSpecError(f"fault key {key!r} needs a number, got {raw!r}", key) from None
    raise FaultSpecError(f"unknown fault key {key!r} (known keys: {', '.join(KNOWN_KEYS)})", key)


def _check_ranges(values: Mapping[str, Any]) -> None:
    status = values.get("status")
    if status is not None and not 400 <= status <= 599:
        raise FaultSpecError(f"fault key 'status' must be between 400 and 599, got {status}", "status")
    for key in ("retry_after", "latency_ms", "chunk_delay_ms", "drop_after", "tokens", "fail_times"):
        value = values.get(key)
        if value is not None and (value < 0 or value != value):
            raise FaultSpecError(f"fault key {key!r} must be >= 0, got {value}", key)


def magic_fault(texts: Iterable[str]) -> FaultSpec | None:
    """Parse every ``[[mock:...]]`` marker in ``texts``; later markers win. None when there is none."""
    items = [body for text in texts if MAGIC_MARKER in text for body in MAGIC.findall(text)]
    return parse_fault(",".join(items)) if items else None


def header_fault(headers: Mapping[str, str]) -> FaultSpec | None:
    """Parse ``x-mock-fault: SPEC`` and the ``x-mock-KEY: VALUE`` shorthands. None when there is none."""
    items = []
    for name, value in headers.items():
        lowered = name.lower()
        if not lowered.startswith(HEADER_PREFIX):
            continue
        key = lowered[len(HEADER_PREFIX) :]
        items.append(value if key == "fault" else f"{key}={value}")
    return parse_fault(",".join(items)) if items else None


def strip_magic(text: str) -> str:
    """Remove ``[[mock:...]]`` markers so replies do not echo them."""
    return MAGIC.sub("", text) if MAGIC_MARKER in text else text


def apply_fail_times(spec: FaultSpec, counts: dict[str, int]) -> FaultSpec:
    """Count this request under the spec's canonical string; past ``fail_times`` the failure is dropped."""
    if spec.fail_times is None or not spec.fails:
        return spec
    key = spec.canonical()
    seen = counts.get(key, 0) + 1
    counts[key] = seen
    return spec if seen <= spec.fail_times else spec.without_failures()
