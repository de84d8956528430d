"""Per-key limits: the ``limits:`` field of a policy's ``keys`` entry and of a virtual key.

A field left unset falls back to the ``budget`` plugin's ``per_key`` setting for that field; a field
given replaces it for this key. The ``budget`` plugin enforces them (rate limits and budgets).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["KeyLimits"]


class KeyLimits(BaseModel):
    """Rate limits (sliding one-minute window) and budgets (fixed UTC minute, day, calendar month)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rpm: int | None = Field(default=None, ge=1, description="Requests per minute (sliding window).")
    tpm: int | None = Field(default=None, ge=1, description="Tokens (input + output) per minute (sliding window).")
    tokens_per_minute: int | None = Field(default=None, ge=1, description="Token budget per UTC minute.")
    tokens_per_day: int | None = Field(default=None, ge=1, description="Token budget per UTC day.")
    tokens_per_month: int | None = Field(default=None, ge=1, description="Token budget per calendar month (UTC).")
    usd_per_minute: float | None = Field(default=None, gt=0, description="Spend budget (USD) per UTC minute.")
    usd_per_day: float | None = Field(default=None, gt=0, description="Spend budget (USD) per UTC day.")
    usd_per_month: float | None = Field(default=None, gt=0, description="Spend budget (USD) per calendar month.")

    def over(self, base: KeyLimits | None) -> KeyLimits:
        """These limits with ``base``'s values for every field left unset here."""
        if base is None:
            return self
        given = self.model_dump(exclude_none=True)
        return base.model_copy(update=given) if given else base
