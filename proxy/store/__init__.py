"""The state store: what must outlive a request (cache entries, counters, breaker state), on diskcache or Redis.

Open one per process with ``open_store(config, home)`` at startup, ``await store.ping()`` for readiness,
and ``await store.close()`` at shutdown. The contract is ``Store`` in ``proxy.store.base``.
"""

from proxy.store.base import Clock, Store, StoreError, StoreUnavailable
from proxy.store.config import StoreConfig, open_store

__all__ = ["Clock", "Store", "StoreConfig", "StoreError", "StoreUnavailable", "open_store"]
