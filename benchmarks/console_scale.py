"""The console at a million recorded requests: seed the request log, then time every page's server work.

    python benchmarks/console_scale.py [--rows 1000000] [--repeat 5]

Seeds ``--rows`` requests over the last 7 days through the request log's own writer (raw rows, verdicts,
per-minute rollups), starts the real proxy app with the console on that file, and fetches each console
page ``--repeat`` times with the admin key as a bearer token (loopback, in-process server: the figure is
the server's time plus a loopback round trip). Prints p50/max per page, the process's RSS growth while
the pages ran, and the file size. No assertion: a script, run by hand; figures go in the README.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from proxy.requestlog import RequestLog
from proxy.server import create_app
from proxy.settings import Settings

ADMIN = "bench-admin-key-0123456789"
KEYS = [f"app{i}" for i in range(20)]
MODELS = ["gpt-4o-mini", "gpt-4o", "local-llama", "claude-3-5-haiku", "embed-small"]
BACKENDS = ["openai", "local", "anthropic"]
STEPS = ["cost", "pii", "injection", "cache", "retry"]


def seed(log: RequestLog, rows: int, span_s: float = 7 * 86400, batch: int = 20_000) -> float:
    rng = random.Random(7)
    now = time.time()
    start = time.perf_counter()
    conn = log._writer()
    made = 0
    while made < rows:
        chunk = []
        for i in range(made, min(rows, made + batch)):
            ts = now - span_s + span_s * i / rows
            status = 200 if rng.random() > 0.04 else rng.choice((400, 429, 502, 504))
            verdicts = {"cost": "priced"}
            if rng.random() < 0.2:
                verdicts["pii"] = "masked"
            if rng.random() < 0.03:
                verdicts["injection"] = "flagged"
            cache = "hit" if rng.random() < 0.15 else "miss"
            verdicts["cache"] = cache
            lat = rng.lognormvariate(5.5, 0.8)
            detail = {"steps": STEPS, "entered": 5, "times": [[s, "on_request", rng.random()] for s in STEPS],
                      "attempts": [["openai", "gpt-4o-mini", status, None, lat * 0.9]], "route": "gpt-4o-mini",
                      "endpoint": "chat", "stream": True, "upstream_model": "gpt-4o-mini", "usage": [0, 0],
                      "subcalls": 0, "source": "upstream", "notes": {}}  # fmt: skip
            chunk.append((
                ts, f"{i:024x}", rng.choice(KEYS), rng.choice(MODELS), rng.choice(BACKENDS), status, lat,
                lat * 0.3, rng.randint(10, 4000), rng.randint(1, 800), rng.random() * 0.01, cache,
                None if status == 200 else "upstream_error", verdicts, detail, 0.002 if cache == "hit" else 0.0,
            ))  # fmt: skip
        with conn:
            log._write(conn, chunk)
        made += len(chunk)
        print(f"\rseeded {made:,} rows", end="", file=sys.stderr)
    print(file=sys.stderr)
    return time.perf_counter() - start


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


PAGES = [
    "/?window=1h", "/?window=24h", "/?window=7d", "/?window=30d",
    "/requests", "/requests?model=gpt-4o", "/requests?key=app3&status=error", "/requests?status=502",
    "/requests?plugin=injection&verdict=flagged", "/requests?model=embed-small&backend=local&key=app7",
    "/requests?window=15m", "/requests?limit=200", "/requests/{middle}", "/guards?window=7d",
    "/guards?window=7d&plugin=injection&verdict=flagged", "/guards?window=30d&plugin=pii&verdict=masked",
    "/guards?window=7d&plugin=pii&verdict=masked&key=app3", "/spend?window=7d", "/spend?window=30d",
    "/backends", "/keys", "/policy", "/capture", "/evals",
]  # fmt: skip


async def pages(base: str, repeat: int, middle: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {p.format(middle=middle): [] for p in PAGES}
    headers = {"Authorization": f"Bearer {ADMIN}"}
    async with aiohttp.ClientSession(headers=headers) as session:
        for _ in range(repeat):
            for path in times:
                start = time.perf_counter()
                async with session.get(base + path) as response:
                    await response.read()
                    assert response.status == 200, (path, response.status, await response.text())
                times[path].append((time.perf_counter() - start) * 1000)
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--db", type=Path, help="reuse (or keep) this request-log file instead of a temporary one")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="console-scale-") as tmp:
        db = args.db or Path(tmp) / "requests.sqlite"
        log = RequestLog(db, max_rows=args.rows + 1)
        log.open()
        if not db.exists() or log.query(lambda c: c.execute("SELECT count(*) FROM requests").fetchone()[0]) == 0:
            seconds = seed(log, args.rows)
            print(f"seeded {args.rows:,} rows in {seconds:.1f} s ({args.rows / seconds:,.0f} rows/s)")
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(
            "backends:\n  openai: {url: 'http://127.0.0.1:9/v1'}\nmodels:\n  '*': {backend: openai}\n"
            f"admin: {{key: '{ADMIN}'}}\n"
        )
        env = {"CHAPERONE_REQUEST_LOG": str(db)}
        app = create_app(Settings(policy_path=policy, home=Path(tmp) / "home", reload_interval_s=0), env=env)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        base = f"http://127.0.0.1:{port}/chaperone/ui"
        await pages(base, 1, args.rows // 2)  # warm: connections, templates, SQLite page cache
        before = rss_mb()
        times = await pages(base, args.repeat, args.rows // 2)
        after = rss_mb()
        await runner.cleanup()
        print(f"\n{'page':<58} {'p50 ms':>8} {'max ms':>8}")
        for path, values in times.items():
            print(f"{path:<58} {statistics.median(values):8.1f} {max(values):8.1f}")
        worst = max(max(v) for v in times.values())
        print(f"\nslowest page load: {worst:.1f} ms; RSS {before:.0f} → {after:.0f} MB while the pages ran")
        print(f"request log file: {db.stat().st_size / 1e6:.0f} MB (+ WAL) for {args.rows:,} rows")


if __name__ == "__main__":
    asyncio.run(main())
