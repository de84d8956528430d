"""Set defaults for, clamp, or forbid sampling parameters on chat and completion requests."""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from proxy import ApiResponse, Exchange, InvalidRequest, PluginRegistry, hookimpl

NUMERIC = frozenset(
    {
        "temperature",
        "top_p",
        "max_tokens",
        "max_completion_tokens",
        "frequency_penalty",
        "presence_penalty",
        "n",
        "seed",
        "top_logprobs",
    }
)
_INTEGER = frozenset({"max_tokens", "max_completion_tokens", "n", "seed", "top_logprobs"})


class Range(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    min: float | None = Field(default=None, description="Smaller values are raised to this.")
    max: float | None = Field(default=None, description="Larger values are lowered to this.")

    @model_validator(mode="after")
    def _ordered(self) -> Range:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is larger than max ({self.max})")
        return self


class ParamsConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    defaults: dict[str, float | int | bool | str] = Field(
        default_factory=dict, description="Set when the client omits them."
    )
    override: dict[str, float | int | bool | str] = Field(
        default_factory=dict, description="Set whatever the client sent."
    )
    clamp: dict[str, Range] = Field(default_factory=dict, description="Numeric parameters kept within a range.")
    # Declared last so its validator sees defaults and override, and errors name the 'forbid' field.
    forbid: frozenset[str] = Field(default=frozenset(), description="Rejected with a 400 when present.")

    @field_validator("clamp")
    @classmethod
    def _numeric(cls, clamp: dict[str, Range]) -> dict[str, Range]:
        unknown = sorted(set(clamp) - NUMERIC)
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not a numeric parameter (one of {', '.join(sorted(NUMERIC))})")
        return clamp

    @field_validator("forbid")
    @classmethod
    def _not_also_set(cls, forbid: frozenset[str], info: ValidationInfo) -> frozenset[str]:
        given = set(info.data.get("defaults", {})) | set(info.data.get("override", {}))
        both = sorted(forbid & given)
        if both:
            raise ValueError(f"{both[0]!r} is both forbidden and given a value")
        return forbid


# The Responses API names the output limit differently; a policy written for chat applies there too.
_NAMES: dict[str, dict[str, str]] = {
    "responses": {"max_tokens": "max_output_tokens", "max_completion_tokens": "max_output_tokens"},
}


class Params:
    name = "params"
    Config = ParamsConfig

    def __init__(self, config: ParamsConfig) -> None:
        self.config = config
        self._forbid = config.forbid
        self._clamp = tuple((key, r.min, r.max, key in _INTEGER) for key, r in config.clamp.items())

    @hookimpl
    async def on_request(self, exchange: Exchange) -> ApiResponse | None:
        body = exchange.request.body
        if self._forbid and (banned := sorted(self._forbid & _chat_names(body.keys(), exchange.request.endpoint))):
            raise InvalidRequest(
                f"The parameter {banned[0]!r} is not allowed by this gateway's policy.",
                param=banned[0],
                code="param_forbidden",
            )
        endpoint = exchange.request.endpoint
        if endpoint == "embeddings":  # no sampling parameters there; OpenAI rejects unknown ones
            return None
        names = _NAMES.get(endpoint, {})
        for key, value in self.config.defaults.items():
            key = names.get(key, key)
            if body.get(key) is None:
                body[key] = value
        for key, value in self.config.override.items():
            body[names.get(key, key)] = value
        for key, lo, hi, integer in self._clamp:
            key = names.get(key, key)
            current = body.get(key)
            if isinstance(current, int | float) and not isinstance(current, bool):
                if lo is not None and current < lo:
                    body[key] = int(lo) if integer else lo
                elif hi is not None and current > hi:
                    body[key] = int(hi) if integer else hi
        return None


def _chat_names(keys: Iterable[str], endpoint: str) -> set[str]:
    """The request's parameter names as a chat-written policy knows them (``max_output_tokens`` → ``max_tokens``)."""
    names = _NAMES.get(endpoint)
    found = set(keys)
    if names:
        found |= {chat for chat, own in names.items() if own in found}
    return found


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    register(Params)
