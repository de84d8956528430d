"""The ``chaperone mock-backend`` subcommand: help text, argument parsing, and a real run stopped by SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import aiohttp
import pytest

from backends.mock import register_cli
from backends.mock.cli import run

# What the lead's CLI does: one parser with subcommands, each setting ``func``.
LAUNCHER = (
    "import argparse, sys\n"
    "from backends.mock import register_cli\n"
    "parser = argparse.ArgumentParser(prog='chaperone')\n"
    "register_cli(parser.add_subparsers(dest='command', required=True))\n"
    "args = parser.parse_args()\n"
    "sys.exit(args.func(args))\n"
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="chaperone")
    register_cli(parser.add_subparsers(dest="command", required=True))
    return parser


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        _parser().parse_args(["mock-backend", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--latency-ms" in out and "--fault" in out and "examples:" in out
    assert "chaperone mock-backend --fault status=429" in out


def test_defaults_and_func() -> None:
    args = _parser().parse_args(["mock-backend"])
    assert (args.host, args.port, args.latency_ms, args.chunk_delay_ms, args.fault) == ("127.0.0.1", 8001, 0, 0, None)
    assert args.func is run


def test_invalid_fault_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = _parser().parse_args(["mock-backend", "--fault", "bogus=1"])
    assert args.func(args) == 2
    assert "'bogus'" in capsys.readouterr().err


async def test_serves_until_sigterm() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        LAUNCHER,
        "mock-backend",
        "--port",
        "0",
        "--latency-ms",
        "1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=5)).decode()
        assert line.startswith("mock backend listening on http://127.0.0.1:") and line.rstrip().endswith("/v1")
        base_url = line.split()[-1]
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as session, session.post(f"{base_url}/chat/completions", json=body) as resp:
            assert resp.status == 200
            assert (await resp.json())["choices"][0]["message"]["content"] == "Mock reply to: hi"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), timeout=5) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
