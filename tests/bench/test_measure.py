"""``bench run``'s figures against the mock, whose first-event delay and inter-event gap are known."""

from __future__ import annotations

import asyncio
import itertools
import random
import statistics
from dataclasses import replace

import aiohttp
import pytest

from bench.load import LoadSpec, arrival_offsets
from bench.run import Plan, run_plan
from bench.sweep import sweep_rate
from bench.workload import WorkloadSpec

SLACK_MS = 12  # scheduling delay on a busy shared machine; ~1 ms on an idle one (benchmarks/generator.py)


def plan(
    url: str, fault: str, *, tokens: int = 8, stream: bool = True, slos: dict[str, float] | None = None, **load: object
) -> Plan:
    load.setdefault("concurrency", 2)
    load.setdefault("requests", 16)
    spec = LoadSpec(warmup="0", cooldown="0", **load)  # type: ignore[arg-type]
    workload = WorkloadSpec(
        model="mock-gpt", input_tokens=24, output_tokens=tokens, stream=stream, mock=True, mock_fault=fault
    )
    return Plan({"mock": url}, workload, spec, slos=slos or {}, progress=False)


async def test_ttft_and_itl_match_what_the_mock_was_told(mock_url: str) -> None:
    summary, records = await run_plan(plan(mock_url, "latency_ms=40,chunk_delay_ms=15"), asyncio.Event())
    s = summary["targets"]["mock"]
    assert s["completed"] == 16 and s["errors"] == 0
    # First event (the role chunk) after the 40 ms latency, the first content one a chunk gap later. Never
    # early; late by what the shared 2-core box adds to every process (a plain aiohttp client sees the same).
    assert 39.5 <= s["ttft_ms"]["p50"] <= 40 + SLACK_MS, s["ttft_ms"]
    assert 54.5 <= s["ttfc_ms"]["p50"] <= 55 + SLACK_MS, s["ttfc_ms"]
    gaps = sorted(r["ttfc_ms"] - r["ttft_ms"] for r in records["mock"])
    assert 14.5 <= gaps[len(gaps) // 2] <= 18, gaps
    assert 14.5 <= s["itl_ms"]["p50"] <= 18, s["itl_ms"]
    # TPOT spans to the last byte: after the 8th content event come the finish and usage events, a gap each
    assert 15 * 9 / 7 - 0.5 <= s["tpot_ms"]["p50"] <= 15 * 9 / 7 + 3, s["tpot_ms"]
    assert s["itl_ms"]["n"] == 16 * 7  # eight content events per stream: seven gaps, the first excluded
    assert {r["output_tokens"] for r in records["mock"]} == {8}
    assert s["tokens"]["with_server_usage"] == 16  # include_usage: counted from the server's usage


async def test_failed_requests_are_counted_by_kind_and_kept_out_of_latency(mock_url: str) -> None:
    async with aiohttp.ClientSession() as session:  # fail_times counts per spec: start from zero
        await session.delete(mock_url.removesuffix("/v1") + "/_mock/requests")
    fault = "latency_ms=20,chunk_delay_ms=10,drop_after=3,fail_times=5"
    summary, records = await run_plan(plan(mock_url, fault, concurrency=1, requests=12), asyncio.Event())
    s = summary["targets"]["mock"]
    assert s["errors_by_kind"] == {"disconnected": 5}  # the socket closed mid-stream
    assert s["completed"] == 7
    assert s["e2e_ms"]["n"] == s["ttft_ms"]["n"] == 7
    dropped = [r["e2e_ms"] for r in records["mock"] if not r["ok"]]
    assert max(dropped) < s["e2e_ms"]["p50"]  # the short, broken streams did not pull the figures down
    assert s["e2e_ms"]["max"] >= 20 + 8 * 10 - 1  # complete streams: latency + a gap per later chunk


async def test_http_errors_carry_their_code(mock_url: str) -> None:
    summary, _ = await run_plan(plan(mock_url, "status=503", requests=4), asyncio.Event())
    s = summary["targets"]["mock"]
    assert s["completed"] == 0 and s["errors"] == 4
    (kind,) = s["errors_by_kind"]
    assert kind.startswith("http_503")
    assert s["ttft_ms"]["n"] == 0 and s["ttft_ms"]["p50"] is None


async def test_goodput_counts_requests_within_every_slo(mock_url: str) -> None:
    loose = plan(mock_url, "latency_ms=10", stream=False, slos={"e2e_ms": 5000})
    tight = plan(mock_url, "latency_ms=10", stream=False, slos={"e2e_ms": 5})
    (a, _), (b, _) = [await run_plan(p, asyncio.Event()) for p in (loose, tight)]
    assert a["targets"]["mock"]["goodput"]["good"] == 16
    assert b["targets"]["mock"]["goodput"]["good"] == 0
    assert a["targets"]["mock"]["ttft_ms"]["n"] == 0  # a whole answer has no first token


def test_poisson_and_gamma_arrivals_have_the_requested_mean_rate() -> None:
    for shape, cv in ((1.0, 1.0), (0.25, 2.0), (4.0, 0.5)):
        offsets = arrival_offsets(50.0, shape, random.Random(7))
        times = [next(offsets) for _ in range(20001)]
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert abs(statistics.fmean(gaps) - 1 / 50) < 0.02 / 50 * 3, shape
        assert abs(statistics.stdev(gaps) / statistics.fmean(gaps) - cv) < 0.1 * cv, shape  # CV = 1/sqrt(shape)


async def test_open_loop_sends_at_the_rate_asked(mock_url: str) -> None:
    p = plan(mock_url, "latency_ms=5", stream=False, concurrency=None, rate=100.0, requests=None, duration_s=1.0)
    summary, records = await run_plan(p, asyncio.Event())
    sent = len(records["mock"])
    assert 70 <= sent <= 130, sent  # Poisson: 100 expected, sd 10
    schedule = arrival_offsets(100.0, 1.0, random.Random(p.load.seed + 1))
    in_window = 0
    while next(schedule) < 1.0:
        in_window += 1
    assert sent == in_window  # the seeded schedule, exactly: arrivals in the first second
    lag = summary["targets"]["mock"]["send_lag_ms"]
    assert lag["n"] == sent and lag["p50"] < 20  # the generator keeps to its schedule


async def test_stop_ends_the_run_and_keeps_what_finished(mock_url: str) -> None:
    stop = asyncio.Event()
    p = plan(mock_url, "latency_ms=5,chunk_delay_ms=20", requests=None, duration_s=30.0)
    task = asyncio.ensure_future(run_plan(p, stop))
    await asyncio.sleep(0.6)  # not a timing assert: lets a few requests finish before the stop
    stop.set()
    summary, records = await asyncio.wait_for(task, 10)
    assert summary["interrupted"] is True
    assert records["mock"] and all(r["ok"] for r in records["mock"])  # in-flight ones were cancelled, not failed


async def test_legacy_completions_stream_their_text(mock_url: str) -> None:
    p = plan(mock_url, "chunk_delay_ms=2")
    p.workload = replace(p.workload, endpoint="completions")
    summary, records = await run_plan(p, asyncio.Event())
    s = summary["targets"]["mock"]
    assert s["completed"] == 16 and s["ttfc_ms"]["n"] == 16
    assert {r["output_tokens"] for r in records["mock"]} == {8}


async def test_a_rate_sweep_probes_saturation_then_runs_rates_up_to_it(mock_url: str) -> None:
    p = plan(mock_url, "latency_ms=5", stream=False, requests=12)
    series, records = await sweep_rate(p, asyncio.Event(), None, max_concurrency=4, steps=2, say=lambda line: None)
    rates = [level["level"] for level in series]
    assert len(rates) == 2 and rates[0] > 0 and rates[1] == pytest.approx(2 * rates[0], abs=0.01)  # half, then all
    assert {r["level"] for r in records["mock"]} == set(rates)
