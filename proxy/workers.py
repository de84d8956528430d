"""``chaperone serve --workers N``: a small parent process that runs N proxy workers on one port.

Design:

- **SO_REUSEPORT.** The parent binds a placeholder socket (``SO_REUSEPORT``, never listening) to reserve
  the port (so ``--port 0`` resolves once) and each worker binds its own listening socket on that port
  with ``reuse_port=True``; the kernel spreads new connections over the workers by a hash of the
  4-tuple. Measured with aiohttp + uvloop and keep-alive clients, one shared listening socket is
  uneven (libuv accepts in a loop, so whichever worker wakes first takes the whole burst: 2000/0 at
  8 connections, 74/26 at 64), while SO_REUSEPORT spreads connections evenly (~50/50). The cost is
  that a worker that dies loses the connections still queued on its own socket.
- **Workers are fresh interpreters** (``python -m proxy.cli serve --workers 1 …``), not forks: each
  imports everything after ``PROMETHEUS_MULTIPROC_DIR`` and ``CHAPERONE_WORKER`` are in its
  environment, and no event loop, thread or open store crosses a fork.
- **The parent stays out of the request path**: it never runs an event loop for traffic. So the
  bundled mock backend (``builtin: mock``) is started by each worker's runtime, one per worker on a
  loopback port of its own: a few MB and a socket per worker, and mock traffic scales with the workers
  instead of queueing on one process.
- **Supervision.** A worker says it listens by writing a line on a pipe; the banner is printed once
  every worker does. A worker that dies later is restarted with a bounded, logged backoff. SIGHUP is
  forwarded to every worker (each reloads its policy; they also poll the file). SIGTERM/SIGINT is
  forwarded and the parent waits for every worker to drain (``CHAPERONE_SHUTDOWN_TIMEOUT_S``, then
  SIGKILL), then exits 0. Workers ask Linux for SIGTERM when the parent dies (``PR_SET_PDEATHSIG``),
  so killing the parent leaves no orphans.
- **Metrics.** ``PROMETHEUS_MULTIPROC_DIR`` is a fresh ``$CHAPERONE_HOME/run/metrics-<parent pid>``,
  removed at exit (and directories of parents no longer running are removed at start); a dead
  worker's live gauges are dropped with ``prometheus_client.multiprocess.mark_process_dead``.
- **State.** The diskcache store is SQLite in ``$CHAPERONE_HOME/store`` and safe across processes;
  Redis is shared anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("chaperone.workers")

WORKER_ENV = "CHAPERONE_WORKER"
"""The worker's index, 0..N-1, in every worker's environment (for log lines and metrics)."""
READY_FD_ENV = "CHAPERONE_WORKER_READY_FD"
"""Internal: the pipe a worker writes one line to once it listens. Its presence makes ``serve`` a worker."""
PARENT_ENV = "CHAPERONE_WORKER_PARENT"
"""Internal: the parent's pid, so a worker started just as the parent died notices."""
METRICS_ENV = "PROMETHEUS_MULTIPROC_DIR"

BACKOFF_MIN_S = 0.5
BACKOFF_MAX_S = 30.0
HEALTHY_AFTER_S = 30.0  # a worker that ran this long resets the backoff
KILL_MARGIN_S = 5.0  # after the shutdown timeout, stragglers are killed
_PR_SET_PDEATHSIG = 1


# ---- the worker side ---------------------------------------------------------------------------------


def worker_ready_fd(env: Mapping[str, str] | None = None) -> int | None:
    """The ready pipe of a worker process; None when this process is not a worker of a parent."""
    value = (os.environ if env is None else env).get(READY_FD_ENV)
    return int(value) if value else None


def die_with_parent() -> None:
    """Ask for SIGTERM (a graceful drain) when the parent exits; exit now if it already did (Linux only)."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:  # pragma: no cover - cannot fail on Linux
        log.warning("cannot watch the parent process (prctl errno %d)", ctypes.get_errno())
    parent = os.environ.get(PARENT_ENV)
    if parent and os.getppid() != int(parent):
        sys.exit("chaperone worker: the parent process is gone")


def announce_ready(fd: int) -> None:
    """Tell the parent this worker listens (one line on the pipe, then close it)."""
    try:
        os.write(fd, b"ready\n")
    finally:
        os.close(fd)


# ---- the parent side ---------------------------------------------------------------------------------


def reserve_port(host: str, port: int) -> tuple[socket.socket, int]:
    """A bound, non-listening SO_REUSEPORT socket holding ``host:port`` (0 picks a free port) and the port."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock, int(sock.getsockname()[1])


def metrics_dir(home: Path, pid: int) -> Path:
    """A fresh, empty multiprocess metrics directory for parent ``pid``; stale ones of dead parents go."""
    run = home / "run"
    run.mkdir(parents=True, exist_ok=True)
    for old in run.glob("metrics-*"):
        suffix = old.name.removeprefix("metrics-")
        if suffix.isdigit() and int(suffix) != pid and not _running(int(suffix)):
            shutil.rmtree(old, ignore_errors=True)
    path = run / f"metrics-{pid}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir()
    return path


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mark_dead(pid: int, directory: Path) -> None:
    try:
        from prometheus_client import multiprocess
    except ImportError:  # pragma: no cover - prometheus-client is a dependency
        return
    try:
        multiprocess.mark_process_dead(pid, str(directory))  # type: ignore[no-untyped-call]
    except OSError as exc:  # pragma: no cover - a file removed under us
        log.warning("could not clear the metrics of worker pid %d: %s", pid, exc)


@dataclass
class _Slot:
    index: int
    proc: asyncio.subprocess.Process | None = None
    ready: bool = False  # listening, with its signal handlers in place
    reload_pending: bool = False  # a SIGHUP came while it was starting
    restarts: int = 0


@dataclass
class Supervisor:
    """Starts ``count`` workers running ``argv``, keeps them running, forwards signals, drains on stop."""

    argv: Sequence[str]
    count: int
    home: Path
    shutdown_timeout_s: float
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    slots: list[_Slot] = field(init=False)
    metrics: Path | None = field(init=False, default=None)
    _stop: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.slots = [_Slot(i) for i in range(self.count)]

    async def run(self, banner: Callable[[list[int]], str]) -> int:
        """Start every worker, print ``banner(pids)`` once all listen, supervise until told to stop.

        Returns the exit status: 0 after a requested stop; a worker's own status (or 1) when one could
        not start (its own message is already on stderr).
        """
        self.metrics = metrics_dir(self.home, os.getpid())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop, sig)
        loop.add_signal_handler(signal.SIGHUP, self.forward, signal.SIGHUP)
        try:
            started = await self._start_all()
            if started != 0 or self._stop.is_set():
                return started
            print(banner([slot.proc.pid for slot in self.slots if slot.proc is not None]), flush=True)
            await asyncio.gather(*(self._supervise(slot) for slot in self.slots))
            return 0
        finally:
            await self._drain()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            shutil.rmtree(self.metrics, ignore_errors=True)

    def stop(self, sig: signal.Signals | None = None) -> None:
        """Stop supervising and send SIGTERM to every worker, which drains and exits."""
        if self._stop.is_set():
            return
        if sig is not None:
            log.info("%s: stopping %d workers (they drain in-flight requests)", sig.name, self.count)
        self._stop.set()
        self.forward(signal.SIGTERM)  # a worker still importing just exits; SIGINT would print a traceback

    def forward(self, sig: signal.Signals) -> None:
        """Send ``sig`` to every running worker."""
        for slot in self.slots:
            if sig == signal.SIGHUP and not slot.ready:
                slot.reload_pending = True  # SIGHUP would kill it before its handler is set: send it once ready
            elif slot.proc is not None and slot.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    slot.proc.send_signal(sig)
        if sig == signal.SIGHUP:
            log.info("SIGHUP passed to %d workers: each reloads its policy", self.count)

    async def _start_all(self) -> int:
        results = await asyncio.gather(*(self._spawn(slot) for slot in self.slots))
        failed = [(slot.index, code) for slot, code in zip(self.slots, results, strict=True) if code is not None]
        if not failed or self._stop.is_set():  # all listen, or told to stop while starting
            return 0
        index, code = failed[0]
        print(f"chaperone: not started: worker {index} exited before it listened ({_describe(code)})", file=sys.stderr)
        self.stop()
        return code

    async def _spawn(self, slot: _Slot) -> int | None:
        """Start the worker of ``slot`` and wait until it listens; its exit status if it died first."""
        assert self.metrics is not None
        read_fd, write_fd = os.pipe()
        env = {
            **self.env,
            WORKER_ENV: str(slot.index),
            READY_FD_ENV: str(write_fd),
            PARENT_ENV: str(os.getpid()),
            METRICS_ENV: str(self.metrics),
        }
        slot.ready = False
        try:
            # its own process group: a terminal's Ctrl-C reaches the parent only, which stops the workers in order
            slot.proc = await asyncio.create_subprocess_exec(*self.argv, env=env, pass_fds=(write_fd,), process_group=0)
        finally:
            os.close(write_fd)
        if await _wait_ready(read_fd):
            slot.ready = True
            if slot.reload_pending:
                slot.reload_pending = False
                slot.proc.send_signal(signal.SIGHUP)
            return None
        code = await slot.proc.wait()
        self._reap(slot)
        return code if code > 0 else 1  # killed by a signal (negative) counts as a failure too

    async def _supervise(self, slot: _Slot) -> None:
        """Wait for the worker to exit; restart it (bounded backoff) unless the parent is stopping."""
        loop = asyncio.get_running_loop()
        delay = BACKOFF_MIN_S
        while not self._stop.is_set():
            proc = slot.proc
            assert proc is not None
            since = loop.time()
            code = await proc.wait()
            slot.ready = False
            self._reap(slot)
            if self._stop.is_set():
                return
            if loop.time() - since >= HEALTHY_AFTER_S:
                delay = BACKOFF_MIN_S
            log.error("worker %d (pid %d) exited unexpectedly (%s); restarting in %.1fs",
                      slot.index, proc.pid, _describe(code), delay)  # fmt: skip
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            if self._stop.is_set():
                return
            delay = min(delay * 2, BACKOFF_MAX_S)
            failed = await self._spawn(slot)
            slot.restarts += 1
            if failed is None and slot.proc is not None:
                log.info("worker %d restarted (restart %d): pid %d", slot.index, slot.restarts, slot.proc.pid)

    def _reap(self, slot: _Slot) -> None:
        if slot.proc is not None and self.metrics is not None:
            _mark_dead(slot.proc.pid, self.metrics)

    async def _drain(self) -> None:
        """Wait for every worker to exit (they got the stop signal); kill the ones past the grace period."""
        running = [slot.proc for slot in self.slots if slot.proc is not None and slot.proc.returncode is None]
        if not running:
            return
        if not self._stop.is_set():
            self.stop()
        waits = [asyncio.ensure_future(proc.wait()) for proc in running]
        _, late = await asyncio.wait(waits, timeout=self.shutdown_timeout_s + KILL_MARGIN_S)
        for proc in running:
            if proc.returncode is None:
                log.error("worker pid %d did not stop in time: killed", proc.pid)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        if late:
            await asyncio.gather(*late)
        for slot in self.slots:
            if slot.proc is not None and slot.proc.returncode is not None:
                self._reap(slot)


async def _wait_ready(read_fd: int) -> bool:
    """True once the worker wrote its line on the pipe; False when the pipe closed first (it died)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    try:
        return bool(await reader.readline())
    finally:
        transport.close()


def _describe(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit status {code}"
