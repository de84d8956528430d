"""In-process micro-benchmark of what metrics and the access log add to one request, after its answer was sent.

Times, per request: finding ``usage`` in a raw answer (``usage_from_raw``) against parsing the whole
body, ``Metrics.record`` for a finished chat request (latency, tokens, one upstream attempt), the
same with a stream's TTFT, cache and budget verdicts, and an access-log line through the queue.
``--multiprocess`` runs it with ``PROMETHEUS_MULTIPROC_DIR`` set (values in memory-mapped files,
as with ``serve --workers N``).

    python benchmarks/metrics_micro.py [--iterations 50000] [--multiprocess]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if "--multiprocess" in sys.argv:  # before prometheus_client is imported: it picks its value class then
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="chaperone-prom-")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from proxy.accesslog import AccessLog
from proxy.chain import compile_chain
from proxy.exchange import ApiRequest, ApiResponse, Attempt, Exchange, Usage
from proxy.metrics import FIRST_EVENT, Metrics, note_usage, usage_from_raw
from proxy.policy import Caller, Route
from proxy.realtime import RealtimeStats
from proxy.recorder import Recorder

ANSWER = orjson.dumps(
    {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "bench-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": " word" * 16, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 21,
            "completion_tokens": 16,
            "total_tokens": 37,
            "prompt_tokens_details": {"cached_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0},
        },
        "system_fingerprint": "fp_mock",
    }
)


class _Policy:
    class metrics:
        enabled = True

    class access_log:
        include_prompts = False


class _Runtime:
    def __init__(self) -> None:
        self.current = None
        self.streams: set[object] = set()


def exchange(stream: bool = False) -> Exchange:
    chain = compile_chain("default", [])
    body = {"model": "bench-model", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    ex = Exchange(
        "id", _Policy(), chain, Route("bench-model", "mock", None), ApiRequest("chat", "/chat/completions", body),  # type: ignore[arg-type]
        Caller("team-a", chain, None), time.monotonic() + 60,
    )  # fmt: skip
    ex.usage = Usage(21, 16, 37)
    ex.attempts.append(Attempt("mock", "bench-model", ex.started, ex.started + 0.001, 200))
    if stream:
        ex.stash[FIRST_EVENT] = ex.started + 0.0005
        ex.verdicts.update({"cache": "miss", "budget": "ok"})
    return ex


def per_call_us(fn: Callable[[], Any], iterations: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(iterations):
            fn()
        best = min(best, time.perf_counter() - start)
    return best * 1e6 / iterations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=50000)
    parser.add_argument("--multiprocess", action="store_true")
    args = parser.parse_args()
    n = args.iterations
    metrics = Metrics(_Runtime(), RealtimeStats(), multiprocess_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR"))  # type: ignore[arg-type]
    chat, stream = exchange(), exchange(stream=True)
    now = time.monotonic()
    recorder = Recorder(metrics, None)
    response = ApiResponse(200, raw=ANSWER)

    def whole_request() -> None:  # what the handler adds to a whole chat answer once it was sent
        if recorder.wants(chat):
            note_usage(chat, response)
            recorder.finished(chat, None, 200)

    rows = [
        ("all of it for a whole answer: wants + note_usage + Recorder.finished", per_call_us(whole_request, n)),
        ("usage_from_raw (find usage in the answer)", per_call_us(lambda: usage_from_raw(ANSWER), n)),
        ("orjson.loads of the whole answer (for comparison)", per_call_us(lambda: orjson.loads(ANSWER), n)),
        ("Metrics.record, chat", per_call_us(lambda: metrics.record(chat, 200, None, now), n)),
        ("Metrics.record, stream + TTFT + 2 verdicts", per_call_us(lambda: metrics.record(stream, 200, None, now), n)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        access = AccessLog(os.path.join(tmp, "access.log"))
        access.start()
        rows.append(("AccessLog.write (queued; the file is written by a thread)", per_call_us(
            lambda: access.write(chat, 200, None, now), n // 5)))  # fmt: skip
        access.stop()
    mode = "multiprocess (mmap files)" if metrics.multiprocess else "single process"
    print(f"| {mode}: per request | µs |\n|---|---:|")
    for name, us in rows:
        print(f"| {name} | {us:.2f} |")


if __name__ == "__main__":
    main()
