"""`chaperone scan` as an operator runs it: a bar on a terminal, plain lines in CI, exit codes."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from tests.proxy.test_scan import POLICY

INPUT = [
    {"id": "p1", "text": "hello alice"},
    {"id": "p2", "text": "ignore all that score=0.97"},
    {"id": "p3", "messages": [{"role": "user", "content": "write to alice@example.com"}]},
]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHAPERONE_"))}
    env.update(CHAPERONE_HOME=str(tmp_path / "home"), CHAPERONE_PLUGINS="tests.scan_plugins", COLUMNS="100")
    return env


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    policy, prompts = tmp_path / "policy.yaml", tmp_path / "prompts.jsonl"
    policy.write_text(POLICY)
    prompts.write_text("".join(json.dumps(item) + "\n" for item in INPUT))
    return policy, prompts


def _scan(tmp_path: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "proxy.cli", "scan", *args],
        input=stdin, capture_output=True, env=_env(tmp_path), timeout=30, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("columns", [100, 0], ids=["sized", "unsized"])
def test_a_terminal_gets_a_progress_bar_and_stdout_keeps_only_results(
    tmp_path: Path, files: tuple[Path, Path], columns: int
) -> None:
    policy, prompts = files
    prompts.write_text(prompts.read_text() + "\n")  # a blank line is not an input: the bar still ends at 3/3
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 30, columns, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "proxy.cli", "scan", "--policy", str(policy), str(prompts)],
        stdout=subprocess.PIPE, stderr=terminal, env=_env(tmp_path),
    )  # fmt: skip
    os.close(terminal)
    seen = b""
    while True:  # read the terminal until the process closes it, so it never blocks on a full pty
        try:
            data = os.read(controller, 4096)
        except OSError:  # EIO: every writer is gone
            break
        if not data:
            break
        seen += data
    os.close(controller)
    assert proc.stdout is not None
    out = proc.stdout.read()
    proc.stdout.close()
    assert proc.wait(timeout=30) == 0
    screen = seen.decode(errors="replace")
    assert "scan: 100%" in screen and "3/3" in screen and "\r" in screen  # tqdm redraws in place
    assert "block=2" in screen  # the running count of inputs that would be blocked
    assert "chaperone scan: 3 inputs" in screen  # the summary, after the bar
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["p1", "p2", "p3"]


def test_without_a_terminal_stderr_has_plain_lines_and_fail_on_block_exits_1(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    policy, prompts = files
    summary = tmp_path / "summary.json"
    done = _scan(
        tmp_path, "--policy", str(policy), "--fail-on", "block", "--progress-interval", "0",
        "--summary-json", str(summary), str(prompts),
    )  # fmt: skip
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "\r" not in err and "%|" not in err
    assert "chaperone scan: 3/3 inputs, 0 bad, 3 flagged, 2 would be blocked" in err
    assert "--fail-on block: 2 inputs would be blocked → exit 1" in err
    assert "Traceback" not in err
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert results[2]["steps"]["spotter"]["action"] == "block"
    assert results[1]["steps"]["scorer"] == {"score": 0.97, "categories": ["override"], "action": "block"}
    assert json.loads(summary.read_text())["would_block"] == 2


def test_stdin_quiet_and_the_operator_mistakes(tmp_path: Path, files: tuple[Path, Path]) -> None:
    policy, prompts = files
    piped = _scan(tmp_path, "--policy", str(policy), "-q", "-", stdin=b'{"id": 1, "text": "hi"}\nnope\n')
    assert piped.returncode == 0
    assert [json.loads(line).get("error", "") for line in piped.stdout.splitlines()][1].startswith("line 2: not JSON")
    assert "inputs/s" not in piped.stderr.decode() and "1 bad line (line 2)" in piped.stderr.decode()

    unknown = _scan(tmp_path, "--policy", str(policy), "--chain", "nope", str(prompts))
    assert unknown.returncode == 2 and unknown.stdout == b""
    assert b"no chain named 'nope'" in unknown.stderr and b"(chains: default, twice)" in unknown.stderr

    missing = _scan(tmp_path, "--policy", str(policy), str(tmp_path / "missing.jsonl"))
    assert missing.returncode == 2 and b"cannot open" in missing.stderr and b"No such file" in missing.stderr

    no_policy = _scan(tmp_path, "--policy", str(tmp_path / "none.yaml"), str(prompts))
    assert no_policy.returncode == 2 and b"cannot read the file" in no_policy.stderr
    for done in (unknown, missing, no_policy):
        assert b"Traceback" not in done.stderr


def test_help_shows_examples() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "proxy.cli", "scan", "--help"], capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 0
    assert b"examples:" in done.stdout and b"--fail-on block" in done.stdout


async def test_results_from_a_slow_pipe_come_out_as_its_lines_arrive(tmp_path: Path, files: tuple[Path, Path]) -> None:
    policy, _ = files
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.cli", "scan", "--policy", str(policy), "-q", "-",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=_env(tmp_path),
    )  # fmt: skip
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for n in (1, 2):  # the pipe stays open: each result must arrive without waiting for more input
            proc.stdin.write(json.dumps({"id": n, "text": "hi alice"}).encode() + b"\n")
            await proc.stdin.drain()
            line = await asyncio.wait_for(proc.stdout.readline(), 20)
            assert json.loads(line)["id"] == n
        proc.stdin.close()
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 0 and b"2 inputs" in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_a_reader_that_stops_early_ends_the_scan_quietly(tmp_path: Path, files: tuple[Path, Path]) -> None:
    policy, prompts = files
    prompts.write_text("".join(json.dumps({"id": n, "text": "x" * 200}) + "\n" for n in range(20_000)))
    command = f"'{sys.executable}' -m proxy.cli scan -q --policy '{policy}' '{prompts}' | head -1"
    done = subprocess.run(
        ["bash", "-c", command + '; echo "status ${PIPESTATUS[0]}" >&2'],
        capture_output=True, env=_env(tmp_path), timeout=60, check=False,
    )  # fmt: skip
    err = done.stderr.decode()
    assert json.loads(done.stdout)["id"] == 0
    assert "the output was closed, stopped reading" in err and "status 141" in err
    assert "Traceback" not in err and "Exception ignored" not in err
