"""Profile one benchmark target under load with py-spy and print its hottest functions.

Starts the mock upstream and one target (``reference`` or a ``chaperone-*`` variant) exactly as the
harness does, drives it with the load generator, and samples the target with ``py-spy record``
(``pip install py-spy``; it needs permission to ptrace the child). Writes the collapsed stacks and
a flame graph under ``benchmarks/results/`` and prints the top functions by self and total time.

    python benchmarks/profile_target.py --target chaperone-empty --stream --concurrency 16
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import ALL_TARGETS, RESULTS, LoadGen, chat_body
from benchmarks.report import Scenario
from benchmarks.targets import CHAPERONE_VARIANTS, Fleet, start_chaperone, start_mock, start_reference, wait_ready


def top_functions(collapsed: Path, limit: int, only: tuple[str, ...], us_per_req: float) -> str:
    """Self and inclusive shares per function from py-spy's collapsed (``--format raw``) output, also as
    estimated µs of the target's CPU per request (share x measured CPU/request)."""
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        samples += count
        frames = [f.split(" (")[0] + " " + _where(f) for f in stack.split(";") if f and not f.startswith("<module>")]
        if frames:
            own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    out = [f"{samples} samples, {us_per_req:.0f} µs CPU/request", "", "self %  µs/req  function"]
    out += [f"{100 * n / samples:5.1f}  {us_per_req * n / samples:6.1f}  {name}" for name, n in own.most_common(limit)]
    out += ["", f"total %  µs/req  function (only {', '.join(only)})"]
    kept = [(name, n) for name, n in total.most_common() if any(part in name for part in only)]
    out += [f"{100 * n / samples:5.1f}  {us_per_req * n / samples:6.1f}  {name}" for name, n in kept[:limit]]
    return "\n".join(out)


def _where(frame: str) -> str:
    inside = frame.partition(" (")[2].rstrip(")")
    path = inside.rpartition(":")[0] or inside
    parts = Path(path).parts
    return f"({'/'.join(parts[-2:]) if parts else path})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="chaperone-empty", choices=[t for t in ALL_TARGETS if t != "direct"])
    parser.add_argument("--stream", action="store_true", help="stream chat (default: non-stream)")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--tokens", type=int, default=16)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument(
        "--gil",
        action="store_true",
        help="sample only the thread holding the GIL: a thread waiting for it (or idle in a queue) "
        "otherwise counts as busy, which inflates the store's pool threads",
    )
    args = parser.parse_args(argv)
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    workdir = Path(tempfile.mkdtemp(prefix="chaperone-profile-"))
    fleet = Fleet(workdir)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kind = "stream" if args.stream else "chat"
    collapsed = RESULTS / f"profile-{args.target}-{kind}-{stamp}.txt"
    RESULTS.mkdir(parents=True, exist_ok=True)
    try:
        mock = start_mock(fleet)
        if args.target == "reference":
            target = start_reference(fleet, mock.base)
        else:
            target = start_chaperone(fleet, args.target, mock.base, CHAPERONE_VARIANTS[args.target]())
        wait_ready([mock, target])
        assert target.proc is not None
        loadgen = LoadGen(fleet, 1)
        scenario = Scenario(kind, args.stream, args.concurrency, args.requests, args.tokens)
        url = target.base + "/v1/chat/completions"
        body = chat_body(args.stream, args.tokens)
        loadgen.run(url, body, scenario, 500)
        spy = subprocess.Popen(
            [
                pyspy,
                "record",
                "--pid",
                str(target.proc.pid),
                "--rate",
                str(args.rate),
                "--format",
                "raw",
                "--output",
                str(collapsed),
                "--nonblocking",
                *(["--gil"] if args.gil else []),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        fleet.procs.append(spy)
        time.sleep(1.0)
        cpu0 = target.cpu_precise() or 0.0
        result = loadgen.run(url, body, scenario, args.requests)
        us_per_req = ((target.cpu_precise() or 0.0) - cpu0) * 1e6 / args.requests
        spy.send_signal(2)
        _, err = spy.communicate(timeout=30)
        if not collapsed.exists():
            print(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
            return 1
        print(f"{args.target} {kind} c={args.concurrency}: {len(result['latencies'])} ok in {result['elapsed_s']:.1f}s")
        print(top_functions(collapsed, args.top, ("proxy/", "backends/", "plugins/", "benchmarks/"), us_per_req))
        print(f"\ncollapsed stacks: {collapsed}")
    finally:
        fleet.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
