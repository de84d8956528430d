"""Throughput of ``chaperone scan``'s engine: inputs per second over a generated JSONL file, in-process.

Two kinds of guard are timed, so the engine's own cost and its concurrency show apart:
``noop`` returns a small report at once (parsing, validation, copying, JSON out, summary: the
engine's overhead per input); ``threaded`` blocks a worker thread for ``--work-ms`` per input, as a
guard that runs presidio or a classifier off the event loop does (time.sleep releases the GIL, so
this shows how well ``--concurrency`` overlaps such work, not the CPU cost of a real model).

    python benchmarks/scan_throughput.py [--inputs 20000] [--work-ms 2]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pydantic import BaseModel, ConfigDict, Field

from proxy import ApiRequest
from proxy.registry import PluginRegistry
from proxy.scan import ScanOptions, run
from proxy.textview import request_texts

POLICY = """
backends:
  stub: {url: "http://127.0.0.1:9/v1"}
models:
  "*": {backend: stub}
chains:
  noop: [{noop: {}}]
  threaded: [{threaded: {work_ms: %s}}]
default_chain: noop
"""


class NoopConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Noop:
    name = "noop"
    Config = NoopConfig

    def __init__(self, config: NoopConfig) -> None:
        pass

    async def scan(self, request: ApiRequest) -> dict[str, Any] | None:
        texts = request_texts(request)
        return {"score": len(texts[0].text) % 10 / 10, "action": "allow"}


class ThreadedConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    work_ms: float = Field(default=2.0, description="Milliseconds a worker thread is busy per input.")


class Threaded:
    name = "threaded"
    Config = ThreadedConfig

    def __init__(self, config: ThreadedConfig) -> None:
        self.seconds = config.work_ms / 1000

    async def scan(self, request: ApiRequest) -> dict[str, Any] | None:
        await asyncio.to_thread(time.sleep, self.seconds)
        return {"entities": [], "action": "allow"}


def timed(policy: Path, home: Path, data: bytes, chain: str, concurrency: int) -> float:
    """Inputs per second for one run (results go to an in-memory buffer)."""
    registry = PluginRegistry()
    registry(Noop)
    registry(Threaded)
    options = ScanOptions(policy=policy, input="-", home=home, chain=chain, concurrency=concurrency, progress="none")
    count = data.count(b"\n")
    started = time.perf_counter()
    err = io.StringIO()
    code = run(options, registry, stdin=io.BytesIO(data), stdout=io.StringIO(), stderr=err)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(err.getvalue())
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=20_000, help="inputs for the noop guard")
    parser.add_argument("--work-ms", type=float, default=2.0, help="thread time per input for the threaded guard")
    args = parser.parse_args()
    text = "Please summarise the attached minutes of the meeting with Ann Smith (ann@example.com). " * 3
    lines = [json.dumps({"id": i, "text": text}) for i in range(args.inputs)]
    with tempfile.TemporaryDirectory() as tmp:
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(POLICY % args.work_ms)
        home = Path(tmp) / "home"
        data = ("\n".join(lines) + "\n").encode()
        few = ("\n".join(lines[:2000]) + "\n").encode()
        print("| guard | concurrency | inputs | inputs/s |\n| --- | ---: | ---: | ---: |")
        for concurrency in (1, 8, 32):
            rate = timed(policy, home, data, "noop", concurrency)
            print(f"| noop | {concurrency} | {args.inputs} | {rate:,.0f} |")
        for concurrency in (1, 8, 32):
            rate = timed(policy, home, few, "threaded", concurrency)
            print(f"| threaded {args.work_ms:g} ms | {concurrency} | 2000 | {rate:,.0f} |")


if __name__ == "__main__":
    main()
