"""Fixtures the cache tests share: the embedding model, and two replicas' handles on one store."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from plugins._cache.index import Embedder
from proxy.store import Store, StoreConfig, open_store


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    model = Embedder()
    model.load()
    return model


@pytest.fixture(params=["diskcache", "redis"])
def store_config(request: pytest.FixtureRequest) -> StoreConfig:
    if request.param == "diskcache":
        return StoreConfig()
    return StoreConfig(backend="redis", url=request.getfixturevalue("clean_redis_url"))


@pytest.fixture
async def replicas(store_config: StoreConfig, tmp_path: Path) -> AsyncIterator[tuple[Store, Store]]:
    """Two handles on one store, as two replicas (or workers) hold them."""
    one = open_store(store_config, tmp_path, clock=time.time)
    two = open_store(store_config, tmp_path, clock=time.time)
    yield one, two
    await one.close()
    await two.close()
