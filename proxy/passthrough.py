"""Which other ``/v1/*`` paths the proxy forwards untouched, per policy and per key.

Chat, completions, embeddings, the Responses API and Anthropic Messages run through the chain;
every other path would reach the upstream without passing a single guard. So forwarding is opt-in:
a rule is ``"METHOD /path-glob"`` (or ``"/path-glob"`` for any HTTP method) with the path below
``/v1``; ``WS /realtime`` is the WebSocket upgrade of the Realtime API, matched only by rules that
say ``WS``. The default forwards only ``GET`` and ``HEAD``, whose requests have no body and so
cannot carry a prompt past the guards; every body-carrying path must be named.

A key's own ``passthrough`` list replaces the policy's for that key. ``risky_rules`` lists the rules
that let a known prompt-carrying path through, for ``chaperone check`` to warn about when a chain
has guards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from proxy.errors import Forbidden

__all__ = [
    "DEFAULT_ALLOW",
    "PROMPT_CARRYING",
    "PassthroughConfig",
    "RealtimeConfig",
    "RuleText",
    "Rules",
    "parse_rule",
    "risky_rules",
]

MIB = 1024 * 1024

DEFAULT_ALLOW = ("GET /*", "HEAD /*")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "WS", "*"})
_RULE = re.compile(r"^(?:([A-Za-z*]+)\s+)?(/\S*)$")

# Paths whose bodies (or sessions) carry text, audio or files to a model, or hand out credentials
# that bypass the proxy entirely. Examples, not an exhaustive list: enough for ``chaperone check``.
PROMPT_CARRYING: tuple[tuple[str, str], ...] = (
    ("POST", "/images/generations"),
    ("POST", "/images/edits"),
    ("POST", "/images/variations"),
    ("POST", "/audio/speech"),
    ("POST", "/audio/transcriptions"),
    ("POST", "/audio/translations"),
    ("POST", "/moderations"),
    ("POST", "/files"),
    ("POST", "/uploads"),
    ("POST", "/batches"),
    ("POST", "/fine_tuning/jobs"),
    ("POST", "/assistants"),
    ("POST", "/threads"),
    ("POST", "/threads/runs"),
    ("POST", "/threads/thread_1/messages"),
    ("POST", "/conversations"),
    ("POST", "/conversations/conv_1/items"),
    ("POST", "/vector_stores"),
    ("POST", "/realtime/sessions"),
    ("POST", "/realtime/client_secrets"),
    ("WS", "/realtime"),
)


@dataclass(frozen=True, slots=True)
class Rule:
    method: str  # upper-case, "*" for any HTTP method (never WS)
    pattern: str
    text: str

    def matches(self, method: str, path: str) -> bool:
        if self.method == "*":
            if method == "WS":
                return False
        elif self.method != method:
            return False
        return fnmatchcase(path, self.pattern)


def parse_rule(text: str) -> Rule:
    """``"POST /audio/*"`` → a rule; a ValueError saying what is wrong otherwise."""
    match = _RULE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not 'METHOD /path' or '/path' (a path below /v1, such as 'POST /audio/*')")
    method = (match.group(1) or "*").upper()
    if method not in METHODS:
        raise ValueError(f"{text!r}: unknown method {method!r} (one of {', '.join(sorted(METHODS))})")
    path = match.group(2)
    if path.startswith("/v1/"):
        raise ValueError(f"{text!r}: give the path below /v1, such as {path[3:]!r}")
    return Rule(method, path, text.strip())


def _checked(text: str) -> str:
    parse_rule(text)
    return text


RuleText = Annotated[str, AfterValidator(_checked)]
"""A rule in a policy or key field, checked where it is given (the error names its index)."""


class PassthroughConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    allow: list[RuleText] = Field(
        default_factory=lambda: list(DEFAULT_ALLOW),
        description="Rules 'METHOD /path-glob' (path below /v1; 'WS /realtime' for the Realtime WebSocket) "
        "of paths forwarded unchanged; default GET and HEAD only.",
    )


class RealtimeConfig(BaseModel):
    """The ``realtime:`` section of a policy: limits on the WebSocket sessions ``WS /realtime`` lets through."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_frame_bytes: int = Field(
        default=4 * MIB,
        ge=1024,
        le=64 * MIB,
        description="Largest WebSocket message either side may send; a larger one closes both sides with 1009. "
        "Default 4 MiB, like limits.max_body_bytes: a minute of 24 kHz PCM16 audio in one base64 append, or an image.",
    )
    idle_timeout_s: float = Field(
        default=300.0, gt=0, description="A session with no frame either way for this long is closed (1000)."
    )


@dataclass(frozen=True, slots=True)
class Rules:
    """A compiled allow list and where it came from (named in the 403, so the reader knows what to edit)."""

    rules: tuple[Rule, ...]
    setting: str  # "passthrough.allow", or "keys[2].passthrough"

    @classmethod
    def compile(cls, texts: Iterable[str], setting: str) -> Rules:
        return cls(tuple(parse_rule(text) for text in texts), setting)

    def allows(self, method: str, path: str) -> bool:
        return any(rule.matches(method, path) for rule in self.rules)

    def check(self, method: str, path: str) -> None:
        """Raise a 403 ``passthrough_refused`` naming the path and the setting unless a rule allows it."""
        if self.allows(method, path):
            return
        shown = "WebSocket /v1" + path if method == "WS" else f"{method} /v1{path}"
        raise Forbidden(
            f"{shown} is not forwarded: no rule of {self.setting} allows it, and forwarding it "
            f"would let its content reach the backend without passing the chain's guards. To forward it, add "
            f"'{method} {path}' to {self.setting}.",
            code="passthrough_refused",
        )


def risky_rules(rules: Sequence[Rules]) -> list[str]:
    """One line per rule that lets a known prompt-carrying path through: ``"passthrough.allow: 'POST /*' …"``."""
    lines = []
    for allow in rules:
        for rule in allow.rules:
            hits = [f"{m} {p}" for m, p in PROMPT_CARRYING if rule.matches(m, p)]
            if hits:
                more = f" and {len(hits) - 3} more" if len(hits) > 3 else ""
                lines.append(f"{allow.setting}: {rule.text!r} forwards {', '.join(hits[:3])}{more}")
    return lines
