"""Launcher test helpers: the STAND-IN engines on PATH, and waiting for a process to be gone."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

STANDINS = Path(__file__).parent / "standins"


@pytest.fixture
def standins(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put the stand-in `vllm`, `text-generation-launcher` and `docker` first on PATH (this interpreter runs them)."""
    monkeypatch.setenv("PATH", f"{STANDINS}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("CHAPERONE_STANDIN_PYTHON", sys.executable)
    for knob in ("STANDIN_EXIT", "STANDIN_NEVER_READY", "STANDIN_IGNORE_TERM", "STANDIN_CHILD", "STANDIN_RUNNING"):
        monkeypatch.delenv(knob, raising=False)
    return STANDINS


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting for its reaper counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


async def gone(pid: int, timeout_s: float = 15.0) -> bool:
    """Wait (bounded) until ``pid`` no longer runs; False if it still does at the end."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while alive(pid):
        if loop.time() > end:
            return False
        await asyncio.sleep(0.05)
    return True


async def until(predicate: object, timeout_s: float = 20.0) -> None:
    """Poll ``predicate()`` until true (bounded; fails the test after ``timeout_s``)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout_s
    while not predicate():  # type: ignore[operator]
        if loop.time() > end:
            raise AssertionError("condition never held")
        await asyncio.sleep(0.05)
