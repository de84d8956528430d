"""``chaperone serve --workers 2`` as real processes: serving, one store, reload, restart, drain, no orphans.

Which worker answered is read from the ``x-request-id`` every response carries: its prefix is random per
process. Connections are fresh for each request (the kernel balances connections, not requests).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from proxy import cli, workers
from tests.conftest import MockUpstream, serve_process, simple_policy

PREFIX = 12  # hex characters of the per-process request-id prefix (proxy/server.py)
Proc = asyncio.subprocess.Process


def _header_chain(value: str) -> str:
    return f"[{{headers: {{response: {{set: {{x-policy-version: '{value}'}}}}}}}}]"


async def _read_until(proc: Proc, text: str, timeout_s: float = 15.0) -> str:
    """Lines of the parent's output (the banner, then logs of parent and workers) up to one containing ``text``."""
    assert proc.stdout is not None
    async with asyncio.timeout(timeout_s):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, f"output ended before {text!r}"
            if text in line:
                return line


def _pids(workers_line: str) -> list[int]:
    return [int(p) for p in workers_line.split("pids", 1)[1].split(",")]


@contextlib.asynccontextmanager
async def _serve(home: Path, policy: Path, **env: str) -> AsyncIterator[tuple[Proc, str, list[int]]]:
    async with serve_process(home, "--policy", str(policy), "--workers", "2", **env) as (proc, url):
        yield proc, url, _pids(await _read_until(proc, "  workers: 2 processes"))


async def _get(url: str, n: int) -> list[tuple[str, int, dict[str, str]]]:
    """``n`` chat requests, each on a new connection: (worker prefix, status, headers) of each."""
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:

        async def one() -> tuple[str, int, dict[str, str]]:
            async with session.post(url + "/chat/completions", json=body) as r:
                await r.read()
                return r.headers["x-request-id"][:PREFIX], r.status, dict(r.headers)

        return list(await asyncio.gather(*(one() for _ in range(n))))


async def _until(check: Callable[[], Any], timeout_s: float = 15.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not await check():  # noqa: ASYNC110 - polling other processes: no event to wait on
            await asyncio.sleep(0.05)


def _alive(pid: int) -> bool:
    """Running and not a zombie (an orphan's reaper may be slow in a container)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False


async def test_two_workers_serve_the_sdk_share_one_store_counter_and_stop_when_the_parent_is_killed(
    tmp_path: Path, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    policy = write_policy(simple_policy(mock_upstream.url, chain="[{counted: {limit: 10}}]"))
    async with _serve(tmp_path / "home", policy, CHAPERONE_PLUGINS="tests.workers_plugins") as (proc, url, pids):

        async def ask() -> tuple[str, str]:
            async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0) as c:  # a new connection
                try:
                    raw = await c.chat.completions.with_raw_response.create(
                        model="mock-gpt", messages=[{"role": "user", "content": "hello"}]
                    )
                except openai.RateLimitError as exc:
                    assert exc.code == "budget_exceeded"
                    return exc.response.headers["x-request-id"][:PREFIX], "refused"
                assert raw.parse().choices[0].message.content
                return raw.headers["x-request-id"][:PREFIX], "answered"

        results = await asyncio.gather(*(ask() for _ in range(30)))
        proc.kill()  # no chance to stop its workers: they must notice and exit by themselves
        await proc.wait()

        async def orphans_gone() -> bool:
            return not any(_alive(pid) for pid in pids)

        await _until(orphans_gone)
    assert sorted(outcome for _, outcome in results).count("answered") == 10  # one counter for both workers
    assert len({prefix for prefix, _ in results}) == 2  # both workers answered


async def test_sighup_reloads_every_worker_and_a_killed_worker_is_restarted(
    tmp_path: Path, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    policy = write_policy(simple_policy(mock_upstream.url, chain=_header_chain("1")))
    async with _serve(tmp_path / "home", policy) as (proc, url, pids):
        assert {h["x-policy-version"] for _, _, h in await _get(url, 10)} == {"1"}
        write_policy(simple_policy(mock_upstream.url, chain=_header_chain("2")))  # no file polling in this test
        proc.send_signal(signal.SIGHUP)
        reloaded: set[str] = set()

        async def both_reloaded() -> bool:
            reloaded.update(prefix for prefix, _, h in await _get(url, 6) if h["x-policy-version"] == "2")
            return len(reloaded) == 2

        await _until(both_reloaded)
        assert {h["x-policy-version"] for _, _, h in await _get(url, 10)} == {"2"}

        before = {prefix for prefix, _, _ in await _get(url, 10)}
        killed = pids[0]
        with contextlib.suppress(ProcessLookupError):
            os.kill(killed, signal.SIGKILL)
        line = await _read_until(proc, "worker 0 restarted (restart 1)")
        new_pid = int(line.rsplit("pid", 1)[1].strip(" )\n"))
        assert new_pid != killed and _alive(new_pid) and not _alive(killed)
        seen: set[str] = set()

        async def new_worker_answers() -> bool:
            answers = await _get(url, 6)
            assert all(status == 200 and h["x-policy-version"] == "2" for _, status, h in answers)
            seen.update(prefix for prefix, _, _ in answers)
            return bool(seen - before)

        await _until(new_worker_answers)


async def test_sigterm_drains_streams_on_every_worker_and_exits_zero(
    tmp_path: Path, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    home = tmp_path / "home"
    policy = write_policy(simple_policy(mock_upstream.url))
    async with _serve(home, policy) as (proc, url, pids):
        clients = [openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0) for _ in range(6)]
        streams = []
        for c in clients:  # six connections: with both workers holding some (2^-5 odds of one worker alone)
            raw = await c.chat.completions.with_raw_response.create(
                model="mock-gpt",
                messages=[{"role": "user", "content": "[[mock:tokens=12,chunk_delay_ms=40]]"}],
                stream=True,
            )
            streams.append((raw.headers["x-request-id"][:PREFIX], raw.parse().__aiter__()))
        firsts = [await it.__anext__() for _, it in streams]
        assert (home / "run" / f"metrics-{proc.pid}").is_dir()
        proc.send_signal(signal.SIGTERM)
        for first, (_, it) in zip(firsts, streams, strict=True):
            chunks = [first, *[chunk async for chunk in it]]
            assert len([ch for ch in chunks if ch.choices and ch.choices[0].delta.content]) == 12
            assert chunks[-1].choices[0].finish_reason is not None
        for c in clients:
            await c.close()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    assert not any(_alive(pid) for pid in pids)
    assert not (home / "run" / f"metrics-{proc.pid}").exists()
    # The kernel may put all six streams on one worker (about 3 % of runs): the drain and the exit of
    # every worker were checked above either way, so the test does not depend on the spread.


def test_metrics_dir_is_fresh_and_stale_ones_are_removed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "metrics-999999999").mkdir(parents=True)  # no such pid: a parent that was killed
    (run / "metrics-1").mkdir()  # pid 1 runs: another parent's, kept
    mine = workers.metrics_dir(tmp_path, 4242)
    (mine / "counter_1.db").write_bytes(b"x")
    assert workers.metrics_dir(tmp_path, 4242) == mine and not any(mine.iterdir())
    assert sorted(p.name for p in run.iterdir()) == ["metrics-1", "metrics-4242"]


async def test_a_port_taken_by_another_program_fails_before_any_worker_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy.cli", "serve", "--workers", "2", "--port", str(port),
            env={**os.environ, "CHAPERONE_HOME": str(tmp_path)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in out.decode()


async def test_workers_that_cannot_start_stop_the_parent_with_an_error(
    tmp_path: Path, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    policy = write_policy(simple_policy(mock_upstream.url, chain="[{failing: {}}]"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAPERONE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.cli", "serve", "--workers", "2", "--port", "0", "--policy", str(policy),
        env={**env, "CHAPERONE_HOME": str(tmp_path), "CHAPERONE_PLUGINS": "tests.workers_plugins"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
    assert proc.returncode == 1
    assert "test plugin: cannot start" in out and "exited before it listened" in out
    assert "chaperone listening" not in out
    assert not list((tmp_path / "run").iterdir())  # the metrics directory is gone too


def test_bad_workers_settings_are_refused(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("CHAPERONE_WORKERS", "0")
    assert cli.main(["serve"]) == 2
    assert "CHAPERONE_WORKERS must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["serve", "--workers", "0"])
    assert "must be at least 1" in capsys.readouterr().err
