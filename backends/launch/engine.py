"""One engine replica's life: start it, stream its log, wait until it serves, restart it, stop it.

- The engine runs in its own process group (a new session), so a stop signals it and everything it
  started; it is also asked (Linux ``PR_SET_PDEATHSIG``) to get SIGTERM when the proxy dies, even by
  SIGKILL, so no engine outlives the proxy.
- Its output is logged line by line under ``chaperone.engine`` with a ``[name]`` prefix; the last
  lines are kept for errors and for ``status()``.
- Ready means ``GET /health`` answers 200 (a 404 counts as "no such endpoint") and then
  ``GET /v1/models`` answers 200, before a deadline; otherwise ``EngineFailed`` names the engine,
  the reason and its last log lines.
- A crash is followed by a restart after a backoff that doubles up to a cap, a bounded number of
  times; a stop is SIGTERM to the group, then SIGKILL after ``stop_timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import socket
import sys
import time
from collections import deque
from typing import Any

import aiohttp

from backends.launch.commands import Command, build_command
from proxy.launchconfig import EngineConfig

__all__ = ["Engine", "EngineFailed", "free_port"]

log = logging.getLogger("chaperone.engine")
_PR_SET_PDEATHSIG = 1
LAST_LINES = 40


class EngineFailed(RuntimeError):
    """An engine that could not be started or never became ready; the message ends with its last log lines."""


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's pick); kept for the engine's restarts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Engine:
    """One replica: a command, a process (restarted on crash) and what is known about it."""

    def __init__(self, config: EngineConfig, *, name: str, replica: int = 0) -> None:
        self.config = config
        self.label = name if config.replicas == 1 else f"{name}/{replica}"
        self.port = config.port + replica if config.port else free_port(config.host)
        try:
            self.command: Command = build_command(config, port=self.port, replica=replica, name=name)
        except FileNotFoundError as exc:  # a GGUF file or model package that is not there
            raise EngineFailed(f"engine {self.label}: {exc}") from None
        self.state = "stopped"  # starting, ready, restarting, failed, stopping, stopped
        self.restarts = 0
        self.last_exit: int | None = None
        self.last_lines: deque[str] = deque(maxlen=LAST_LINES)
        self.started_at = 0.0
        self.loaded_adapters: set[str] = set()  # LoRA adapters the engine lists (vLLM)
        self.metrics: dict[str, float] = {}  # scraped from /metrics (see backends.launch.metrics)
        self.outstanding = 0  # requests the proxy has in flight on this replica
        self._proc: asyncio.subprocess.Process | None = None
        self._pump: asyncio.Task[None] | None = None
        self._watch: asyncio.Task[None] | None = None
        self._stopping = False
        self._ready_event = asyncio.Event()

    @property
    def base_url(self) -> str:
        return self.command.base_url

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    # ---- start and readiness ---------------------------------------------------------------

    async def start(self) -> None:
        """Start the process and wait until it serves; ``EngineFailed`` (after stopping it) if it does not."""
        self._stopping = False
        await self._spawn()
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise
        self._watch = asyncio.create_task(self._supervise(), name=f"engine-{self.label}-watch")

    async def _spawn(self) -> None:
        self.state = "starting"
        self._ready_event.clear()
        env = {**os.environ, **self.command.env, "PYTHONUNBUFFERED": "1"}
        log.info("[%s] starting: %s", self.label, self.command.shown())
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *self.command.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: a stop reaches every process it starts
                preexec_fn=_die_with_parent,
            )
        except OSError as exc:
            self.state = "failed"
            raise EngineFailed(f"engine {self.label}: cannot run {self.command.argv[0]!r}: {exc}") from None
        self.started_at = time.monotonic()
        self._pump = asyncio.create_task(self._read_output(self._proc), name=f"engine-{self.label}-log")

    async def _read_output(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        while True:
            try:
                raw = await proc.stdout.readline()
            except ValueError:  # a line over the stream limit: keep what fits
                raw = await proc.stdout.read(65536)
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip()
            if line:
                self.last_lines.append(line)
                log.info("[%s] %s", self.label, line)

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.config.ready_timeout_s
        headers = {"authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}
        why = "no answer yet"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5), headers=headers) as session:
            stage = "/health"
            while True:
                proc = self._proc
                if proc is not None and proc.returncode is not None:
                    raise self._failure(f"exited with status {proc.returncode} before it was ready")
                if time.monotonic() > deadline:
                    raise self._failure(f"not ready after {self.config.ready_timeout_s:g} s ({why})")
                try:
                    url = self.command.root_url + stage if stage == "/health" else self.base_url + "/models"
                    async with session.get(url) as resp:
                        body = await resp.read()
                        if stage == "/health" and resp.status in (200, 404):
                            stage = "/v1/models"
                            continue
                        if stage == "/v1/models" and resp.status == 200:
                            self._note_models(body)
                            break
                        why = f"GET {stage}: HTTP {resp.status}"
                except (aiohttp.ClientError, TimeoutError) as exc:
                    why = f"GET {stage}: {type(exc).__name__}"
                await asyncio.sleep(0.1)
        self.state = "ready"
        self._ready_event.set()
        log.info("[%s] ready at %s (pid %s)", self.label, self.base_url, self.pid)

    def _note_models(self, body: bytes) -> None:
        """Remember which LoRA adapters the engine lists (vLLM lists them with a ``parent``)."""
        import orjson

        try:
            data = orjson.loads(body).get("data", [])
        except (orjson.JSONDecodeError, AttributeError):
            return
        bases = set(self.config.names)
        self.loaded_adapters = {
            str(item.get("id")) for item in data if isinstance(item, dict) and item.get("id") not in bases
            and item.get("parent") is not None
        }  # fmt: skip

    def _failure(self, why: str) -> EngineFailed:
        self.state = "failed"
        tail = "\n  ".join(list(self.last_lines)[-15:]) or "(no output)"
        return EngineFailed(f"engine {self.label} {why}; its last log lines:\n  {tail}")

    async def wait_ready(self, timeout_s: float) -> bool:
        """Wait (bounded) for a restarting engine to be ready again; False if it is not."""
        if self.ready:
            return True
        if self.state in ("failed", "stopped", "stopping"):
            return False
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready_event.wait(), timeout_s)
        return self.ready

    # ---- crash and restart ------------------------------------------------------------------

    async def _supervise(self) -> None:
        backoff = self.config.restart.backoff_s
        while True:
            proc = self._proc
            assert proc is not None
            code = await proc.wait()
            if self._pump is not None:
                await asyncio.gather(self._pump, return_exceptions=True)
            if self._stopping:
                return
            self.last_exit = code
            if time.monotonic() - self.started_at > self.config.restart.reset_after_s:
                self.restarts, backoff = 0, self.config.restart.backoff_s
            if self.restarts >= self.config.restart.max_restarts:
                self.state = "failed"
                log.error("[%s] exited with status %s; restarted %d times already, giving up", self.label, code,
                          self.restarts)  # fmt: skip
                return
            self.state = "restarting"
            self.restarts += 1
            log.warning("[%s] exited with status %s; restart %d/%d in %.1f s", self.label, code, self.restarts,
                        self.config.restart.max_restarts, backoff)  # fmt: skip
            await asyncio.sleep(backoff)
            backoff = min(max(backoff * 2, 0.1), self.config.restart.backoff_max_s)
            if self._stopping:
                return
            try:
                await self._spawn()
                await self._wait_ready()
            except EngineFailed as exc:
                log.error("%s", exc)
                if self._proc is not None and self._proc.returncode is None:
                    await self._terminate(self._proc)

    # ---- stop --------------------------------------------------------------------------------

    async def stop(self) -> None:
        """SIGTERM to the engine's process group, SIGKILL after ``stop_timeout_s``; idempotent."""
        self._stopping = True
        self.state = "stopping"
        watch, self._watch = self._watch, None
        if watch is not None and watch is not asyncio.current_task():
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
        proc = self._proc
        if proc is not None and proc.returncode is None:
            await self._terminate(proc)
        if self._pump is not None:
            await asyncio.gather(self._pump, return_exceptions=True)
        if self.command.container:
            await self._remove_container()
        self.state = "stopped"

    async def _terminate(self, proc: asyncio.subprocess.Process) -> None:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), self.config.stop_timeout_s)
        except TimeoutError:
            log.warning("[%s] did not stop in %g s after SIGTERM: SIGKILL", self.label, self.config.stop_timeout_s)
            _signal_group(proc.pid, signal.SIGKILL)
            await proc.wait()
        _signal_group(proc.pid, signal.SIGKILL)  # anything the engine left behind in its group

    async def _remove_container(self) -> None:
        """The client is gone; make sure its container is too (a killed client leaves it running)."""
        assert self.command.runtime is not None and self.command.container is not None
        with contextlib.suppress(OSError):
            proc = await asyncio.create_subprocess_exec(
                self.command.runtime, "rm", "-f", self.command.container,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 30)

    def status(self) -> dict[str, Any]:
        return {
            "replica": self.label,
            "engine": self.config.engine,
            "url": self.base_url,
            "pid": self.pid,
            "state": self.state,
            "ready": self.ready,
            "restarts": self.restarts,
            "command": self.command.shown_argv(),  # [console2] secrets as ***; the environment by name only
            "env": sorted(self.command.env),  # [console2]
            "uptime_s": round(time.monotonic() - self.started_at, 1) if self.state in ("starting", "ready") else None,
            "last_exit": self.last_exit,
            "outstanding": self.outstanding,
            "adapters": sorted(self.loaded_adapters),
            "metrics": dict(self.metrics),
            "last_log_lines": list(self.last_lines)[-10:],
        }


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
