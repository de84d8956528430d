"""The ``budget`` plugin's policy config, validated when the policy loads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from proxy.limits import KeyLimits

Overflow = Literal["reject", "truncate", "middle_out", "summarize", "fallback"]


class BudgetConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    on_overflow: Overflow = Field(
        default="reject",
        description="What to do when the input does not fit the model's window: reject (400 "
        "context_length_exceeded), truncate (drop oldest turns), middle_out (drop middle turns), "
        "summarize (replace old turns by a summary from summarize_model), fallback (a larger model "
        "of the route's fallback list).",
    )
    context_windows: dict[str, int] = Field(
        default_factory=dict, description="Context window (tokens) per model name, over the built-in table."
    )
    default_window: int | None = Field(
        default=None, ge=1, description="Window for models neither table knows (unset: no fitting for them)."
    )
    max_input_tokens: int | None = Field(
        default=None, ge=1, description="A cap on input tokens for every model, below its window."
    )
    output_reserve: int = Field(
        default=1024, ge=1, description="Tokens kept free for the answer when the client names no output limit."
    )
    min_output_tokens: int = Field(
        default=16,
        ge=1,
        description="Room the input must leave for the answer when the client names an output limit "
        "(that limit is then clamped to what is left).",
    )
    output_estimate: int = Field(
        default=512,
        ge=0,
        description="Output tokens reserved against tpm and token budgets when the client names no limit.",
    )
    summarize_model: str | None = Field(
        default=None, description="The policy model (a cheap one) that writes summaries for on_overflow: summarize."
    )
    summary_max_tokens: int = Field(default=512, ge=16, description="Longest summary asked of summarize_model.")
    per_key: KeyLimits = Field(
        default_factory=KeyLimits, description="Limits for every key (a key's own limits: field overrides them)."
    )
    per_model: dict[str, KeyLimits] = Field(
        default_factory=dict, description="Limits per model route name, shared by every key."
    )
    lease_fraction: float = Field(
        default=1 / 32,
        gt=0,
        le=1,
        description="Share of each limit a process takes from the store at a time and admits from locally "
        "(smaller near the limit). Larger: fewer store writes; smaller: less quota held unused per process.",
    )
    lease_idle_s: float = Field(
        default=10.0,
        gt=0,
        description="A lease unused this long gives its rest back to the store, so an idle replica does not "
        "hold quota the busy ones could use (a day or month budget would otherwise stay short all window).",
    )
    fail_open: bool = Field(
        default=False, description="When the store cannot be reached: admit requests (true) or answer 503 (false)."
    )

    @model_validator(mode="after")
    def _summarizer(self) -> BudgetConfig:
        if self.on_overflow == "summarize" and not self.summarize_model:
            raise ValueError("on_overflow: summarize needs summarize_model (a model of the policy)")
        for name, size in [*self.context_windows.items(), ("default_window", self.default_window)]:
            if size is not None and size <= self.output_reserve:
                where = name if name == "default_window" else f"context_windows.{name}"
                raise ValueError(
                    f"{where}: {size} tokens leave no room for input after output_reserve ({self.output_reserve})"
                )
        return self
