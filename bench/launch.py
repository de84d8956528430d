"""``--launch``: start the engine of a policy backend's ``launch:`` block around a benchmark, then stop it.

The hook is ``backends.launch.bench_engine(policy: Path, backend: str)``, provided by the engine
launcher (issue 10): a context manager whose entry starts the engine and returns once it serves,
with a dict such as ``{"command": [...], "url": "http://…/v1"}`` (recorded as ``engine`` in
``manifest.json``), and whose exit stops it. Until that function exists ``--launch`` is refused with
a message saying so.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HOOK_MODULE, HOOK_NAME = "backends.launch", "bench_engine"


@contextlib.contextmanager
def engine(policy: str | None, backend: str | None) -> Iterator[dict[str, Any] | None]:
    """Nothing without ``backend``; otherwise the launched engine's description while it runs."""
    if backend is None:
        yield None
        return
    try:
        module = importlib.import_module(HOOK_MODULE)
    except ImportError:
        raise ValueError(f"--launch needs {HOOK_MODULE} (the engine launcher), which is not installed") from None
    hook = getattr(module, HOOK_NAME, None)
    if hook is None:
        raise ValueError(f"--launch: {HOOK_MODULE} has no {HOOK_NAME}(policy, backend) hook yet")
    if policy is None:
        raise ValueError("--launch needs --policy FILE: the policy whose backend has the launch block")
    with hook(Path(policy), backend) as info:
        yield dict(info)
