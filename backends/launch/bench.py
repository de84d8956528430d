"""``chaperone bench --launch BACKEND``: the engine of a policy backend's ``launch:`` block, around a run.

``bench_engine(policy, backend)`` is the hook ``bench/launch.py`` calls: a (synchronous) context
manager that starts the engine's first replica on its own event loop thread, returns once it serves
with ``{"command": [...], "url": ...}`` (secrets shown as ``***``), and stops it on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from backends.launch.engine import Engine
from proxy.policy import load_policy
from proxy.registry import build_registry


@contextlib.contextmanager
def bench_engine(policy: Path, backend: str) -> Iterator[dict[str, Any]]:
    """Start ``backend``'s engine (from ``policy``) for the length of the ``with`` block."""
    compiled = load_policy(policy, build_registry(), env=os.environ)
    config = compiled.backends.get(backend)
    if config is None:
        raise ValueError(f"--launch: the policy has no backend named {backend!r}")
    if config.launch is None:
        raise ValueError(f"--launch: backend {backend!r} has no launch: block")
    launch = config.launch
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name=f"chaperone-bench-{backend}", daemon=True)
    thread.start()

    async def make() -> Engine:
        return Engine(launch, name=backend)

    def run(coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    try:
        engine: Engine = run(make())
        run(engine.start())
        try:
            yield {"command": engine.command.shown(), "url": engine.base_url, "engine": launch.engine}
        finally:
            run(engine.stop())
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
