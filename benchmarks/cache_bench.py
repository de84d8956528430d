"""Cache benchmark: semantic quality on the labelled pair set, lookup latency at 100k entries, hit vs upstream.

1. Quality: for every pair of ``benchmarks/data/cache_pairs.jsonl`` (``paraphrase`` or ``near_miss``),
   one prompt is cached and the other asked, both ways round, through the plugin's own decision
   (cosine ≥ threshold, then the vetoes of ``plugins/_cache/guards.py``). Reports the hit rate on
   paraphrases and the false-hit rate on near misses at the default threshold, and a threshold sweep.
   ``cache_pairs_holdout.jsonl`` (40 pairs) was written after the vetoes were designed on the first set;
   its first run found three false hits (zip/unzip, CLI flags, "avoiding"), fixed since, so it is no
   longer unseen: treat it as a regression set. ``cache_pairs_tricks.jsonl`` (256 pairs: opposites,
   prefixes and negators of other languages and scripts, phrasal verbs and separable particles, terms
   swapped across "than"/"from", question words, antonym adjectives, number words, currencies,
   "-free" words, Chinese/Japanese/Korean slots) was written in seven parts at stop 27, each before it
   was first run and each after the fixes the one before called for. Their first runs served 20 %,
   15 %, 37 %, 13 %, 20 %, 8 % and 87 % (the Chinese, Japanese and Korean part) of their near-miss trials
   from cache; all are at 0 % since, so this is a regression set too. ``cache_pairs_fresh.jsonl`` (89
   pairs in three parts, written between the others) was never tuned on: each part's first run, 4 %,
   4 % and 0 % of near-miss trials served, is the best estimate of what unseen near misses do. One miss
   is left: "help with" against "cause"; the second part's other one, 删除/恢复 (delete/restore), is
   caught since the character-diff rule the Chinese/Japanese/Korean part called for.
2. Added latency of a semantic lookup with 100k entries in one partition: the plugin's ``on_request``
   on a miss (exact get on diskcache, embedding, two-stage search, vetoes; one thread hop), p50/p99.
3. A hit through the proxy vs the mock upstream at 50 ms: p50 of each over HTTP on loopback (aiohttp).
4. What exact mode costs per request (all four hooks, diskcache, in-process): CPU and wall µs, miss and hit.

    python benchmarks/cache_bench.py [--entries 100000] [--iterations 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import numpy as np

from plugins._cache.config import DEFAULT_THRESHOLD
from plugins._cache.guards import features, swapped_slot, veto
from plugins._cache.index import Embedder, Partition, split

DATA = Path(__file__).resolve().parent / "data" / "cache_pairs.jsonl"


def quality(embedder: Embedder, path: Path = DATA) -> dict[str, Any]:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    trials: list[tuple[str, float, bool]] = []  # (label, similarity, vetoed)
    for row in rows:
        for cached, asked in ((row["a"], row["b"]), (row["b"], row["a"])):
            va, vb = (split(embedder.embed(t))[1] for t in (cached, asked))
            new, old = features(asked), features(cached)
            vetoed = veto(new, old) is not None or swapped_slot(new, old, embedder.word_similarity)
            trials.append((row["label"], float(va @ vb), vetoed))

    def rates(threshold: float) -> tuple[float, float]:
        para = [s >= threshold and not v for label, s, v in trials if label == "paraphrase"]
        near = [s >= threshold and not v for label, s, v in trials if label == "near_miss"]
        return sum(para) / len(para), sum(near) / len(near)

    sweep = {f"{t:.2f}": rates(t) for t in np.arange(0.55, 0.96, 0.05)}
    hit, false_hit = rates(DEFAULT_THRESHOLD)
    no_veto_near = [s >= DEFAULT_THRESHOLD for label, s, _ in trials if label == "near_miss"]
    return {
        "pairs": len(rows),
        "trials": len(trials),
        "threshold": DEFAULT_THRESHOLD,
        "paraphrase_hit_rate": round(hit, 3),
        "near_miss_false_hit_rate": round(false_hit, 4),
        "false_hit_rate_without_vetoes": round(sum(no_veto_near) / len(no_veto_near), 3),
        "sweep (hit, false hit)": {k: (round(a, 3), round(b, 4)) for k, (a, b) in sweep.items()},
    }


PROMPT_PARTS = (
    ["How do I", "What is the best way to", "Can you explain how to", "Show me how to", "Why can't I"],
    ["configure", "reset", "install", "debug", "optimise", "export", "migrate", "secure", "monitor", "delete"],
    ["the database", "my router", "a Python script", "the billing page", "a Kubernetes pod", "the VPN",
     "an S3 bucket", "my laptop", "the CI pipeline", "a React app", "the printer", "a spreadsheet"],
    ["on Windows", "for a small team", "without downtime", "in production", "quickly", "step by step",
     "on a budget", "for beginners", "at scale", "after an update"],
)  # fmt: skip


async def lookup_latency(embedder: Embedder, entries: int, iterations: int) -> dict[str, Any]:
    from plugins._cache.config import CacheConfig
    from plugins._cache.keys import semantic_keys, tenant_of
    from plugins.cache import Cache
    from proxy.registry import build_registry
    from proxy.runtime import Resources
    from proxy.store import StoreConfig, open_store
    from tests.chain_helpers import compile_chain_policy, make_exchange

    rng = random.Random(7)
    prompts = [" ".join(rng.choice(part) for part in PROMPT_PARTS) + f" (ticket {i})" for i in range(entries)]
    t0 = time.perf_counter()
    vectors = embedder._model.embed(prompts, norm=False, batch_size=512)
    embed_s = time.perf_counter() - t0
    home = Path(tempfile.mkdtemp(prefix="cache-bench-"))
    store = open_store(StoreConfig(), home, clock=time.time)
    registry = build_registry(entry_points=False)
    policy = compile_chain_policy("[{cache: {mode: semantic}}]", registry)
    plugin = Cache(CacheConfig(mode="semantic", coalesce=False))
    plugin.embedder = embedder
    await plugin.on_startup(Resources(store=store, home=home))
    assert plugin.shared is not None

    def body(text: str) -> dict[str, Any]:
        return {"model": "m", "temperature": 0, "messages": [{"role": "user", "content": text}]}

    probe = make_exchange(policy, body(prompts[0]))
    partition = semantic_keys(probe.request, tenant_of(probe.caller, False)).partition
    index = Partition(entries + 1)
    for i, (vector, text) in enumerate(zip(vectors, prompts, strict=True)):
        index.add(np.asarray(vector, np.float32), f"k{i}", text)
    sync = plugin.shared._partition(partition)[1]
    sync.at = float("inf")  # the rows are in memory already: no store sync inside the measurement
    plugin.shared.partitions[partition] = (index, sync)
    queries = [" ".join(rng.choice(part) for part in PROMPT_PARTS) + " please" for _ in range(iterations)]
    times: list[float] = []
    for text in queries:
        exchange = make_exchange(policy, body(text))
        start = time.perf_counter()
        await plugin.on_request(exchange)
        times.append((time.perf_counter() - start) * 1000)
    search_only = []
    for text in queries[:200]:
        vector = embedder.embed(text)
        start = time.perf_counter()
        index.search(vector, DEFAULT_THRESHOLD, 8)
        search_only.append((time.perf_counter() - start) * 1000)
    await plugin.on_shutdown()  # its last answers written before the store closes
    await store.close()
    return {
        "entries_in_partition": len(index),
        "index_build_embed_s": round(embed_s, 1),
        "on_request_miss_ms_p50": round(statistics.median(times), 3),
        "on_request_miss_ms_p99": round(float(np.percentile(times, 99)), 3),
        "matrix_search_ms_p50": round(statistics.median(search_only), 3),
    }


async def hit_vs_upstream(iterations: int) -> dict[str, Any]:
    from backends.mock import MockConfig, create_app
    from proxy.registry import build_registry
    from proxy.server import create_app as create_proxy_app
    from proxy.settings import Settings
    from tests.conftest import simple_policy, start_site

    mock_runner, mock = await start_site(create_app(MockConfig(latency_ms=50)))
    home = Path(tempfile.mkdtemp(prefix="cache-bench-"))
    policy = home / "policy.yaml"
    policy.write_text(simple_policy(mock + "/v1", "[{cache: {mode: exact}}]"))
    registry = build_registry(entry_points=False)
    app = create_proxy_app(Settings(policy_path=policy, home=home / "home", reload_interval_s=0), registry=registry)
    proxy_runner, proxy = await start_site(app)
    body = {"model": "mock-gpt", "temperature": 0, "messages": [{"role": "user", "content": "hello there"}]}
    headers = {"Authorization": "Bearer sk-bench"}

    async def timed(session: aiohttp.ClientSession, url: str) -> tuple[float, str]:
        start = time.perf_counter()
        async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
            await r.read()
            return (time.perf_counter() - start) * 1000, r.headers.get("x-chaperone-cache", "")

    async with aiohttp.ClientSession() as session:
        await timed(session, proxy)
        await asyncio.sleep(0.2)
        upstream = [(await timed(session, mock))[0] for _ in range(max(20, iterations // 10))]
        hits = []
        for _ in range(iterations):
            ms, verdict = await timed(session, proxy)
            assert verdict == "hit", verdict
            hits.append(ms)
    await proxy_runner.cleanup()
    await mock_runner.cleanup()
    up, hit = statistics.median(upstream), statistics.median(hits)
    return {"upstream_ms_p50": round(up, 2), "hit_ms_p50": round(hit, 3), "speedup": round(up / hit, 1)}


async def exact_cost(iterations: int, max_entries: int | None = 100_000) -> dict[str, Any]:
    """CPU µs per request the plugin adds in exact mode (all hooks, diskcache), on a miss and on a hit."""
    from plugins._cache.config import CacheConfig
    from plugins.cache import Cache
    from proxy.exchange import ApiResponse
    from proxy.registry import build_registry
    from proxy.runtime import Resources
    from proxy.store import StoreConfig, open_store
    from tests.chain_helpers import CHAT_OK, compile_chain_policy, make_exchange

    home = Path(tempfile.mkdtemp(prefix="cache-bench-"))
    store = open_store(StoreConfig(), home, clock=time.time)
    registry = build_registry(entry_points=False)
    policy = compile_chain_policy("[{cache: {mode: exact}}]", registry)
    plugin = Cache(CacheConfig(mode="exact", max_entries=max_entries))
    await plugin.on_startup(Resources(store=store, home=home))
    answer = json.dumps(CHAT_OK).encode()

    async def one(text: str) -> None:
        body = {"model": "m", "temperature": 0, "messages": [{"role": "user", "content": text}]}
        exchange = make_exchange(policy, body)
        hit = await plugin.on_request(exchange)
        exchange.response = hit or ApiResponse(200, raw=answer)
        await plugin.on_response(exchange)
        await plugin.on_complete(exchange)

    out: dict[str, Any] = {}
    for label, texts in (("miss", [f"question {i}" for i in range(iterations)]), ("hit", ["question 0"] * iterations)):
        wall, cpu = time.perf_counter(), time.process_time()
        for text in texts:
            await one(text)
        out[f"{label}_cpu_us"] = round((time.process_time() - cpu) / iterations * 1e6, 1)
        out[f"{label}_wall_us"] = round((time.perf_counter() - wall) / iterations * 1e6, 1)
    await plugin.on_shutdown()
    await store.close()
    return out


async def store_op_cost(n: int = 1000) -> dict[str, float]:
    """CPU µs of one diskcache operation as the plugin awaits it (for reading the figures above)."""
    from proxy.store import StoreConfig, open_store

    store = open_store(StoreConfig(), Path(tempfile.mkdtemp(prefix="cache-bench-")), clock=time.time)
    out = {}
    cpu = time.process_time()
    for i in range(n):
        await store.get(f"x{i}")
    out["get"] = round((time.process_time() - cpu) / n * 1e6, 1)
    cpu = time.process_time()
    for i in range(n):
        await store.set(f"y{i}", b"v" * 500)
    out["set"] = round((time.process_time() - cpu) / n * 1e6, 1)
    await store.close()
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    embedder = Embedder()
    embedder.load()
    report = {
        "quality": quality(embedder),
        "quality_second_set": quality(embedder, DATA.with_name("cache_pairs_holdout.jsonl")),
        "quality_tricks_set": quality(embedder, DATA.with_name("cache_pairs_tricks.jsonl")),
        "quality_fresh_set": quality(embedder, DATA.with_name("cache_pairs_fresh.jsonl")),
        "lookup": await lookup_latency(embedder, args.entries, args.iterations),
        "hit_vs_upstream": await hit_vs_upstream(args.iterations),
        "exact_mode_cost": await exact_cost(max(args.iterations, 1000)),
        "exact_mode_cost_ttl_only": await exact_cost(max(args.iterations, 1000), max_entries=None),
        "store_op_cpu_us": await store_op_cost(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
