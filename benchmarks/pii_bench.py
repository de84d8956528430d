"""PII detector benchmark: latency per tier (p50/p99) and recall/precision on the labelled set, per language and entity.

Latency is measured through ``analyze_many`` (what the pii plugin awaits: pre-check on the loop, one
thread hop) on a 200-word prompt: patterns tier without PII, patterns tier with PII, NER tier.
The eval set is ``benchmarks/data/pii_eval.jsonl`` (one {"lang", "text", "spans": [{"entity", "value"}]}
a line). A gold span counts as found when a finding of the same entity overlaps it; a finding that
overlaps no gold span of its entity is a false positive. NER entities are scored in the NER tier only.

    python benchmarks/pii_bench.py [--iterations 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from plugins._pii.config import NER_ENTITIES
from plugins._pii.detect import DetectorConfig, Finding, PiiDetector

DATA = Path(__file__).resolve().parent / "data" / "pii_eval.jsonl"
PARAGRAPH = (
    "Our team reviewed the quarterly plan on Monday and agreed to focus on three goals for 2025. "
    "First, we will reduce the time it takes to onboard a new customer from two weeks to five days, "
    "which means simplifying the contract and automating the account setup. Second, the support group "
    "wants a clearer escalation path, because 18% of tickets last year waited more than a day for an answer. "
    "Third, we should publish the API changes earlier so that partners can test them before release. "
    "Please draft a short summary of these points for the leadership meeting, keep the tone neutral, "
    "list open questions at the end, and suggest a realistic timeline with milestones for each goal. "
    "Mention the budget only in general terms and avoid naming individual people in the document. "
)
PII = (
    " If anything is unclear, write to anna.keller@example.com or call her on +49 30 1234567; the invoice "
    "goes to DE89 3704 0044 0532 0130 00 and the test card is 4111 1111 1111 1111."
)


def prompt(words: int, with_pii: bool) -> str:
    base = (PARAGRAPH * 4).split()[:words]
    text = " ".join(base)
    return text[: len(text) // 2] + PII + text[len(text) // 2 :] if with_pii else text


async def latency(detector: PiiDetector, text: str, iterations: int) -> tuple[float, float]:
    times = []
    for _ in range(iterations):
        start = time.perf_counter()
        await detector.analyze_many([text])
        times.append(time.perf_counter() - start)
    times.sort()
    return statistics.median(times) * 1e3, times[int(len(times) * 0.99) - 1] * 1e3


def overlaps(f: Finding, start: int, end: int) -> bool:
    return f.start < end and start < f.end


def evaluate(detector: PiiDetector, rows: list[dict[str, object]], ner: bool) -> dict[tuple[str, str], list[int]]:
    """(lang, entity) -> [gold, found (same entity), false positives, masked (by a finding of any entity)]."""
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for row in rows:
        text, lang = str(row["text"]), str(row["lang"])
        gold = []
        for span in row["spans"]:  # type: ignore[attr-defined]
            if span["entity"] in NER_ENTITIES and not ner:
                continue
            start = text.index(span["value"])
            gold.append((span["entity"], start, start + len(span["value"])))
        findings = detector.analyze(text)
        for entity, start, end in gold:
            counts[(lang, entity)][0] += 1
            if any(f.entity == entity and overlaps(f, start, end) for f in findings):
                counts[(lang, entity)][1] += 1
            if any(overlaps(f, start, end) for f in findings):
                counts[(lang, entity)][3] += 1
        for f in findings:
            if not any(e == f.entity and overlaps(f, s, t) for e, s, t in gold):
                counts[(lang, f.entity)][2] += 1
    return counts


def print_eval(title: str, counts: dict[tuple[str, str], list[int]]) -> None:
    print(f"\n{title}\n{'lang':<5} {'entity':<14} {'gold':>4} {'found':>5} {'recall':>7} {'FP':>3} {'masked':>7}")
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (lang, entity), (gold, hit, fp, masked) in sorted(counts.items()):
        recall, cover = (f"{hit / gold:.0%}", f"{masked / gold:.0%}") if gold else ("-", "-")
        print(f"{lang:<5} {entity:<14} {gold:>4} {hit:>5} {recall:>7} {fp:>3} {cover:>7}")
        for key in (lang, "all"):
            totals[key] = [a + b for a, b in zip(totals[key], (gold, hit, fp, masked), strict=True)]
    for lang, (gold, hit, fp, masked) in sorted(totals.items()):
        precision = hit / (hit + fp) if hit + fp else 1.0
        line = f"{lang:<5} {'TOTAL':<14} {gold:>4} {hit:>5} {hit / gold:>7.0%} {fp:>3} {masked / gold:>7.0%}"
        print(f"{line}  precision {precision:.0%}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=300)
    args = parser.parse_args()
    patterns, ner = PiiDetector(DetectorConfig()), PiiDetector(DetectorConfig(ner=True))
    for name, detector in (("patterns", patterns), ("ner", ner)):
        start = time.perf_counter()
        await detector.start()
        print(f"build {name} tier: {time.perf_counter() - start:.2f} s")
    clean, dirty = prompt(200, False), prompt(200, True)
    assert not patterns.analyze(clean), "the clean prompt must have no PII"
    print(f"\n{'case (200 words, analyze_many)':<36} {'p50 ms':>8} {'p99 ms':>8}")
    for label, detector, text, n in (
        ("patterns tier, no PII", patterns, clean, args.iterations),
        ("patterns tier, with PII", patterns, dirty, args.iterations),
        ("NER tier, with PII", ner, dirty, max(20, args.iterations // 5)),
    ):
        p50, p99 = await latency(detector, text, n)
        print(f"{label:<36} {p50:>8.2f} {p99:>8.2f}")
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    print_eval(f"patterns tier on {DATA.name} ({len(rows)} texts)", evaluate(patterns, rows, ner=False))
    print_eval("NER tier (patterns + PERSON/LOCATION/ORGANIZATION)", evaluate(ner, rows, ner=True))


if __name__ == "__main__":
    asyncio.run(main())
