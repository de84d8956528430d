"""The processes under test: the mock upstream, the reference proxy and the Chaperone variants.

Every target is its own subprocess on a free loopback port, with its output in a log file. The
``Fleet`` starts them, waits until each answers, reads their CPU time from ``/proc`` and stops
them all (terminate, then kill) however the run ends.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the shared pieces live in the bench package

from bench import procs
from bench.procs import (  # re-exported: the harness scripts import them from here
    CLK_TCK,
    HOST,
    Target,
    cpu_seconds,
    cpu_seconds_precise,
    free_port,
    log_tail,
    wait_ready,
)

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
__all__ = [
    "CLK_TCK", "HOST", "Fleet", "Target", "cpu_seconds", "cpu_seconds_precise", "free_port", "log_tail", "wait_ready",
]  # fmt: skip

PARAMS_HEADERS_CHAIN: list[dict[str, Any]] = [
    {"params": {"defaults": {"temperature": 0.5}, "clamp": {"max_tokens": {"max": 4096}}}},
    {"headers": {"request": {"set": {"x-a": "1"}}, "response": {"set": {"x-b": "2"}}}},
]
NOOP8_CHAIN: list[str | dict[str, Any]] = [
    {name: {}}
    for name in (
        "noop_request",
        "noop_wrap",
        "noop_response",
        "noop_chunk",
        "noop_complete",
        "noop_request2",
        "noop_response2",
        "noop_complete2",
    )
]

# Issue 7's overhead target: counting + rpm/tpm, an exact cache (every request misses: the harness
# numbers its bodies), then cost. cost goes first in a chain so it sees cache hits.
MONEY_CHAIN: list[dict[str, Any]] = [
    {"cost": {}},
    {"budget": {"per_key": {"rpm": 100_000_000, "tpm": 1_000_000_000_000}}},
    {"cache": {"mode": "exact", "max_temperature": 2.0, "missing_temperature": 0.0}},
]


def default_chain() -> list[Any]:
    """The chain ``proxy/policies/default.yaml`` runs (its ``default_chain``)."""
    spec = yaml.safe_load((ROOT / "proxy" / "policies" / "default.yaml").read_text())
    chains: dict[str, list[Any]] = spec["chains"]
    return chains[spec.get("default_chain", "default")]


def policy_text(upstream: str, chain: list[Any]) -> str:
    """A policy sending every model to ``upstream`` through one chain."""
    spec = {
        "backends": {"mock": {"url": f"{upstream}/v1", "timeout_s": 60, "max_connections": 1024}},
        "models": {"*": {"backend": "mock"}},
        "chains": {"default": chain},
        "default_chain": "default",
    }
    return yaml.safe_dump(spec, sort_keys=False)


@dataclass
class Fleet(procs.Fleet):
    """The shared fleet, with the repository as working directory and ``child_env()`` for children."""

    cwd: Path | None = ROOT

    def default_env(self) -> dict[str, str]:
        return child_env()


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def start_mock(fleet: Fleet) -> Target:
    port = free_port()
    proc, log = fleet.spawn("mock", [sys.executable, "-m", "proxy.cli", "mock-backend", "--port", str(port)])
    return Target("mock", port, proc, log, ready_path="/_mock/health")


REFERENCE_CLIENTS = {
    "reference": ("--client", "http1"),
    "reference-aiohttp": ("--client", "aiohttp"),
    "reference-metered": ("--client", "http1", "--metered"),
}
"""The reference relay's targets and their arguments: ``reference`` (every ratio's denominator) uses the
lean client Chaperone uses; ``reference-aiohttp`` is the aiohttp-only relay of stops 1 to 23;
``reference-metered`` is the reference plus the least a gateway that meters every request does (the floor)."""


def start_reference(fleet: Fleet, upstream: str, name: str = "reference") -> Target:
    port = free_port()
    argv = [sys.executable, str(HERE / "reference_proxy.py"), "--upstream", upstream, "--port", str(port)]
    proc, log = fleet.spawn(name, [*argv, *REFERENCE_CLIENTS[name]])
    return Target(name, port, proc, log, ready_path="/v1/models")


def start_chaperone(fleet: Fleet, name: str, upstream: str, chain: list[Any], *, root: Path = ROOT) -> Target:
    """``chaperone serve`` running ``chain``; ``root`` is the checkout whose code it runs (a baseline worktree)."""
    port = free_port()
    home = fleet.workdir / name
    home.mkdir()
    policy = home / "policy.yaml"
    policy.write_text(policy_text(upstream, chain))
    env = child_env(
        CHAPERONE_HOME=str(home),
        CHAPERONE_RELOAD_INTERVAL_S="0",
        CHAPERONE_SHUTDOWN_TIMEOUT_S="1",
        CHAPERONE_PLUGINS="benchmarks.noop_plugins",
        CHAPERONE_LOG_LEVEL="WARNING",
        PYTHONPATH=os.pathsep.join(filter(None, [str(root), os.environ.get("PYTHONPATH", "")])),
    )
    argv = [sys.executable, "-m", "proxy.cli", "serve", "--policy", str(policy), "--host", HOST, "--port", str(port)]
    proc, log = fleet.spawn(name, argv, env, cwd=root)
    return Target(name, port, proc, log)


CHAPERONE_VARIANTS: dict[str, Callable[[], list[Any]]] = {
    "chaperone-empty": lambda: [],
    "chaperone-params-headers": lambda: PARAMS_HEADERS_CHAIN,
    "chaperone-default": default_chain,
    "chaperone-noop8": lambda: NOOP8_CHAIN,
    "chaperone-pii": lambda: [{"pii": {}}],
    "chaperone-money": lambda: MONEY_CHAIN,
}
