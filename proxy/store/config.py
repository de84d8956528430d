"""Store configuration, and ``open_store``: the one place that turns a ``StoreConfig`` into a ``Store``."""

import time
from pathlib import Path
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from proxy.store.base import Clock, Store
from proxy.store.disk import DiskStore
from proxy.store.redis import RedisStore

__all__ = ["StoreConfig", "open_store"]

_REDIS_SCHEMES = ("redis://", "rediss://", "unix://")


class StoreConfig(BaseModel):
    """Where shared state lives: diskcache for one host (the default), Redis for several replicas."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["diskcache", "redis"] = Field(
        default="diskcache",
        description="diskcache: embedded, in a local directory. redis: shared by every replica using the URL.",
    )
    path: str | None = Field(
        default=None,
        description="diskcache directory; relative paths are under the Chaperone home. Default: <home>/store.",
    )
    url: str | None = Field(
        default=None,
        description="Redis URL (redis://, rediss:// or unix://), required when backend is redis.",
    )
    prefix: str = Field(default="chaperone:", description="Prepended to every key, to share one Redis or directory.")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(_REDIS_SCHEMES):
            raise ValueError(f"url must start with one of {', '.join(_REDIS_SCHEMES)}")
        return url

    @model_validator(mode="after")
    def _fields_match_backend(self) -> Self:
        if self.backend == "redis" and not self.url:
            raise ValueError("url is required when backend is 'redis' (for example redis://localhost:6379/0)")
        if self.backend == "redis" and self.path is not None:
            raise ValueError("path applies only to backend 'diskcache'; remove it or set backend: diskcache")
        if self.backend == "diskcache" and self.url is not None:
            raise ValueError("url applies only to backend 'redis'; set backend: redis to use it")
        return self


def open_store(config: StoreConfig, home: Path, *, clock: Clock = time.time) -> Store:
    """Build the configured store without touching the backend; call ``ping()`` to check it is reachable.

    :param config: the validated store section of the settings.
    :param home: the Chaperone home directory; the diskcache directory defaults to ``home / "store"``.
    :param clock: seconds since the epoch, for TTLs and windows; inject a fake one in tests.
    """
    if config.backend == "redis":
        assert config.url is not None  # guaranteed by StoreConfig
        return RedisStore(config.url, prefix=config.prefix, clock=clock)
    directory = home / Path(config.path).expanduser() if config.path is not None else home / "store"
    return DiskStore(directory, prefix=config.prefix, clock=clock)
