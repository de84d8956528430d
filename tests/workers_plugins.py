"""A test plugin that admits a fixed number of requests, counted in the shared store (for `--workers` tests).

Load it with ``CHAPERONE_PLUGINS=tests.workers_plugins``. ``counted: {limit: N}`` admits the first N
requests (an atomic ``store.incr``) and refuses the rest with 429 ``budget_exceeded``: with several
workers on one diskcache store, exactly N requests get through in total. ``failing: {}`` compiles
(so ``chaperone check`` and the ``--workers`` parent accept it) but raises in ``on_startup``, so every
worker fails to start.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from proxy import BudgetExceeded, Exchange, PluginRegistry, hookimpl
from proxy.runtime import Resources
from proxy.store import Store


class CountedConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    limit: int = Field(ge=0, description="Requests admitted in total, across every process sharing the store.")
    key: str = Field(default="test:admitted", description="Store counter that counts the requests.")


class Counted:
    name = "counted"
    Config = CountedConfig

    def __init__(self, config: CountedConfig) -> None:
        self.config = config
        self.store: Store | None = None

    @hookimpl
    async def on_startup(self, resources: Resources) -> None:
        self.store = resources.store

    @hookimpl
    async def on_request(self, exchange: Exchange) -> None:
        assert self.store is not None, "on_request before on_startup"
        if await self.store.incr(self.config.key) > self.config.limit:
            raise BudgetExceeded(f"over the test limit of {self.config.limit} requests")


class FailingConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Failing:
    name = "failing"
    Config = FailingConfig

    def __init__(self, config: FailingConfig) -> None:
        self.config = config

    @hookimpl
    async def on_startup(self, resources: Resources) -> None:
        raise RuntimeError("test plugin: cannot start")


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    register(Counted)
    register(Failing)
