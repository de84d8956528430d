"""Subprocesses a benchmark starts: free loopback ports, a fleet stopped however the run ends, readiness, CPU.

Shared by ``chaperone bench`` (tests, the mock it can start) and the ``benchmarks/`` harness scripts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


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


@dataclass
class Target:
    """One process (or address) a load generator can be pointed at."""

    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None  # None when nothing was started for it
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
    cwd: Path | None = None

    def default_env(self) -> dict[str, str]:
        return dict(os.environ)

    def spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, *, cwd: Path | None = None
    ) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self.workdir / f"{name}.log"
        log = open(log_path, "wb")
        self._logs.append(log)
        proc = subprocess.Popen(
            argv,
            cwd=cwd or self.cwd,
            env=env or self.default_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
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
