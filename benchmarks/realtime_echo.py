"""Realtime API relay cost: WebSocket echo through ``chaperone serve`` against the mock directly.

Two scenarios, each against ``direct`` (the mock's ``/v1/realtime``) and ``chaperone`` (the same
through the proxy, empty chain, a ``WS /realtime`` rule), each target its own process:

- ping-pong: C sessions, each sending a small JSON event and waiting for its echo, for D seconds;
  round trips/s and the RTT p50/p99 (what a voice app's turn-taking feels);
- stream: one session pipelining audio-sized frames (``--frame-bytes``, default 6.4 KB: 100 ms of
  24 kHz PCM16 as base64) while reading the echoes; frames/s each way.

CPU µs/frame is the proxy process's CPU time over the frames it relayed (both directions).

    python benchmarks/realtime_echo.py [--seconds 3] [--concurrency 1,16] [--frame-bytes 6400]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.targets import HOST, Fleet, Target, child_env, free_port, start_mock, wait_ready

POLICY = """
backends: {{mock: {{url: "http://{host}:{port}/v1"}}}}
models: {{"*": {{backend: mock}}}}
passthrough: {{allow: ["GET /*", "WS /realtime"]}}
realtime: {{max_frame_bytes: 1048576, idle_timeout_s: 60}}
"""


def start_proxy(fleet: Fleet, mock: Target) -> Target:
    port, home = free_port(), fleet.workdir / "chaperone"
    home.mkdir()
    policy = home / "policy.yaml"
    policy.write_text(POLICY.format(host=HOST, port=mock.port))
    env = child_env(CHAPERONE_HOME=str(home), CHAPERONE_RELOAD_INTERVAL_S="0", CHAPERONE_LOG_LEVEL="WARNING")
    argv = [sys.executable, "-m", "proxy.cli", "serve", "--policy", str(policy), "--host", HOST, "--port", str(port)]
    proc, log = fleet.spawn("chaperone", argv, env)
    return Target("chaperone", port, proc, log)


async def ping_pong(url: str, sessions: int, seconds: float) -> list[float]:
    """RTTs (s) of every round trip of ``sessions`` concurrent sessions over ``seconds``."""
    rtts: list[float] = []
    event = json.dumps({"type": "conversation.item.create", "item": {"type": "message", "content": "x" * 120}})

    async def one(session: aiohttp.ClientSession, end: float) -> None:
        async with session.ws_connect(url) as ws:
            await ws.receive()  # session.created
            while time.perf_counter() < end:
                sent = time.perf_counter()
                await ws.send_str(event)
                await ws.receive()
                rtts.append(time.perf_counter() - sent)

    async with aiohttp.ClientSession() as session:
        end = time.perf_counter() + seconds
        await asyncio.gather(*(one(session, end) for _ in range(sessions)))
    return rtts


async def stream(url: str, frame_bytes: int, seconds: float) -> tuple[int, float]:
    """Frames echoed back and the wall time, one session sending as fast as the relay takes them."""
    frame = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * frame_bytes})
    async with aiohttp.ClientSession() as session, session.ws_connect(url, max_msg_size=0) as ws:
        await ws.receive()
        sent, end, started = 0, time.perf_counter() + seconds, time.perf_counter()

        async def writer() -> None:
            nonlocal sent
            while time.perf_counter() < end:
                await ws.send_str(frame)
                sent += 1
                if sent % 64 == 0:
                    await asyncio.sleep(0)

        task = asyncio.create_task(writer())
        received = 0
        while not task.done() or received < sent:
            await ws.receive()
            received += 1
        await task
        return received, time.perf_counter() - started


def _per_frame(target: Target, cpu0: float | None, frames: int) -> str:
    cpu1 = target.cpu()
    if cpu0 is None or cpu1 is None or not frames:
        return "-"
    return f"{(cpu1 - cpu0) / frames * 1e6:.0f}"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(targets: dict[str, Target], args: argparse.Namespace) -> None:
    print("| scenario | target | rate | RTT p50 ms | RTT p99 ms | proxy CPU µs/frame |")
    print("|---|---|---|---|---|---|")
    for concurrency in args.concurrency:
        rates: dict[str, float] = {}
        for name, target in targets.items():
            url = target.base.replace("http://", "ws://") + "/v1/realtime?model=gpt-realtime"
            cpu0 = target.cpu()
            rtts = await ping_pong(url, concurrency, args.seconds)
            rates[name] = len(rtts) / args.seconds
            per_frame = _per_frame(target, cpu0, 2 * len(rtts))
            print(
                f"| ping-pong c={concurrency} | {name} | {rates[name]:.0f} round trips/s | "
                f"{percentile(rtts, 0.5) * 1e3:.2f} | {percentile(rtts, 0.99) * 1e3:.2f} | {per_frame} |"
            )
        print(f"| ping-pong c={concurrency} | ratio | {rates['chaperone'] / rates['direct']:.2f} | | | |")
    rates = {}
    for name, target in targets.items():
        url = target.base.replace("http://", "ws://") + "/v1/realtime?model=gpt-realtime"
        cpu0 = target.cpu()
        frames, wall = await stream(url, args.frame_bytes, args.seconds)
        rates[name] = frames / wall
        per_frame = _per_frame(target, cpu0, 2 * frames)
        print(f"| stream {args.frame_bytes} B | {name} | {rates[name]:.0f} frames/s each way | | | {per_frame} |")
    print(f"| stream {args.frame_bytes} B | ratio | {rates['chaperone'] / rates['direct']:.2f} | | | |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 16])
    parser.add_argument("--frame-bytes", type=int, default=6400)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(Path(tmp))
        try:
            mock = start_mock(fleet)
            wait_ready([mock])
            proxy = start_proxy(fleet, mock)
            wait_ready([proxy])
            direct = Target("direct", mock.port)
            asyncio.run(measure({"direct": direct, "chaperone": proxy}, args))
        finally:
            fleet.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
