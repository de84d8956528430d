"""Add, set or remove HTTP headers on the way to the backend and on the way back to the client."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from proxy import ApiResponse, Exchange, PluginRegistry, hookimpl

_PROTECTED = frozenset({"authorization", "content-length", "content-type", "host", "transfer-encoding", "x-request-id"})


def _names(values: list[str]) -> list[str]:
    for value in values:
        if not value or any(c in value for c in " :\r\n"):
            raise ValueError(f"{value!r} is not a header name")
    return [v.lower() for v in values]


class HeaderRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    set: dict[str, str] = Field(default_factory=dict, description="Headers set (replacing any the message had).")
    remove: list[str] = Field(default_factory=list, description="Header names removed, case-insensitive.")

    @field_validator("set")
    @classmethod
    def _set_names(cls, value: dict[str, str]) -> dict[str, str]:
        names = _names(list(value))
        protected = sorted(set(names) & _PROTECTED)
        if protected:
            raise ValueError(f"{protected[0]!r} is managed by the proxy and cannot be set here")
        for name, text in value.items():
            if "\r" in text or "\n" in text:
                raise ValueError(f"the value of {name!r} contains a line break")
        return dict(zip(names, value.values(), strict=True))

    @field_validator("remove")
    @classmethod
    def _remove_names(cls, value: list[str]) -> list[str]:
        return _names(value)

    def apply(self, headers: dict[str, str]) -> None:
        for name in self.remove:
            for key in [k for k in headers if k.lower() == name]:
                del headers[key]
        headers.update(self.set)


class HeadersConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    request: HeaderRules = Field(default_factory=HeaderRules, description="Applied to what the backend receives.")
    response: HeaderRules = Field(default_factory=HeaderRules, description="Applied to what the client receives.")


class Headers:
    name = "headers"
    Config = HeadersConfig

    def __init__(self, config: HeadersConfig) -> None:
        self.config = config

    @hookimpl
    async def on_request(self, exchange: Exchange) -> ApiResponse | None:
        self.config.request.apply(exchange.request.headers)
        return None

    @hookimpl
    async def on_response(self, exchange: Exchange) -> None:
        if exchange.response is not None:
            self.config.response.apply(exchange.response.headers)


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    register(Headers)
