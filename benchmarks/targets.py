"""The processes under test: the mock upstream, the reference proxy and the Chaperone variants.

Every target is its own subprocess on a free loopback port, with its output in a log file. The
``Fleet`` starts them, waits until each answers, reads their CPU time from ``/proc`` and stops
them all (terminate, then kill) however the run ends.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")

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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of the whole process (all threads), from ``/proc/<pid>/stat``, in seconds."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    fields = stat[stat.rindex(b")") + 2 :].split()  # the command name may contain spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # fields 14 and 15 of proc(5)


def cpu_seconds_precise(pid: int) -> float | None:
    """On-CPU time of all threads in nanosecond resolution (``/proc/<pid>/task/*/schedstat``), if available."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat", "rb") as f:
                total += int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


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
class Target:
    """One thing the load generator can be pointed at."""

    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None  # None for ``direct`` (the mock itself is measured separately)
    log: Path | None = None
    ready_path: str = "/healthz"

    @property
    def base(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu(self) -> float | None:
        return cpu_seconds(self.proc.pid) if self.proc else None

    def cpu_precise(self) -> float | None:
        return cpu_seconds_precise(self.proc.pid) if self.proc else None


@dataclass
class Fleet:
    """All subprocesses of one run; ``stop()`` is safe to call any number of times."""

    workdir: Path
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    _logs: list[Any] = field(default_factory=list)

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self.workdir / f"{name}.log"
        log = open(log_path, "wb")
        self._logs.append(log)
        proc = subprocess.Popen(
            argv, cwd=ROOT, env=env or child_env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
        )
        self.procs.append(proc)
        return proc, log_path

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 5
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self._logs:
            log.close()
        self.procs.clear()
        self._logs.clear()


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


def start_reference(fleet: Fleet, upstream: str) -> Target:
    port = free_port()
    argv = [sys.executable, str(HERE / "reference_proxy.py"), "--upstream", upstream, "--port", str(port)]
    proc, log = fleet.spawn("reference", argv)
    return Target("reference", port, proc, log, ready_path="/v1/models")


def start_chaperone(fleet: Fleet, name: str, upstream: str, chain: list[Any]) -> Target:
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
    )
    argv = [sys.executable, "-m", "proxy.cli", "serve", "--policy", str(policy), "--host", HOST, "--port", str(port)]
    proc, log = fleet.spawn(name, argv, env)
    return Target(name, port, proc, log)


CHAPERONE_VARIANTS: dict[str, Callable[[], list[Any]]] = {
    "chaperone-empty": lambda: [],
    "chaperone-params-headers": lambda: PARAMS_HEADERS_CHAIN,
    "chaperone-default": default_chain,
    "chaperone-noop8": lambda: NOOP8_CHAIN,
    "chaperone-pii": lambda: [{"pii": {}}],
    "chaperone-money": lambda: MONEY_CHAIN,
}


def wait_ready(targets: list[Target], timeout_s: float = 60.0) -> None:
    """Poll each target's readiness URL; raise with the log tail of one that died or never answered."""
    deadline = time.monotonic() + timeout_s
    pending = list(targets)
    while pending:
        target = pending[0]
        if target.proc is not None and target.proc.poll() is not None:
            raise RuntimeError(f"{target.name} exited with status {target.proc.returncode}:\n{log_tail(target)}")
        try:
            with urllib.request.urlopen(target.base + target.ready_path, timeout=2) as resp:
                if resp.status == 200:
                    pending.pop(0)
                    continue
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{target.name} did not become ready in {timeout_s:.0f}s:\n{log_tail(target)}")
        time.sleep(0.1)


def log_tail(target: Target, lines: int = 20) -> str:
    if target.log is None or not target.log.exists():
        return "(no log)"
    return "\n".join(target.log.read_text(errors="replace").splitlines()[-lines:])
