"""The ``retry`` plugin's policy config, validated when the policy loads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

FallbackReason = Literal["error", "context_window", "content_filter"]
_ALL: tuple[FallbackReason, ...] = ("error", "context_window", "content_filter")


class RetryConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(
        default=3, ge=1, le=20, description="Attempts per route (the first included) before falling back."
    )
    backoff_s: float = Field(default=0.2, ge=0, description="Base of the exponential backoff (full jitter).")
    max_backoff_s: float = Field(default=4.0, ge=0, description="Cap of one backoff wait.")
    retry_after_cap_s: float = Field(
        default=5.0,
        ge=0,
        description="An upstream's Retry-After / x-ratelimit-reset-* up to this is waited for; longer skips to "
        "the next fallback (or, without one, answers with the upstream's 429 and its Retry-After).",
    )
    attempt_timeout_s: float | None = Field(
        default=None,
        gt=0,
        description="Limit for one attempt (for a stream: until its first bytes); default: the backend's timeout_s.",
    )
    deadline_s: float = Field(
        default=120.0,
        gt=0,
        description="Limit for the whole request, every retry and fallback included; the client's "
        "x-chaperone-deadline-ms header may shorten it, never lengthen it.",
    )
    fallback_on: list[FallbackReason] = Field(
        default_factory=lambda: list(_ALL),
        description="When to move to the route's next fallback: error (retries spent, or the circuit is open), "
        "context_window (the request does not fit the model's window), content_filter (the upstream refused "
        "on content grounds).",
    )
    context_windows: dict[str, int] = Field(
        default_factory=dict,
        description="Context window (tokens) per model name, over the built-in table (the budget plugin's).",
    )

    @model_validator(mode="after")
    def _caps(self) -> RetryConfig:
        if self.max_backoff_s < self.backoff_s:
            raise ValueError("max_backoff_s must be at least backoff_s")
        if any(size < 1 for size in self.context_windows.values()):
            raise ValueError("context_windows: sizes are positive token counts")
        return self
