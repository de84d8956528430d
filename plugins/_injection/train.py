"""Train the shipped classifier: ``python -m plugins._injection.train`` rewrites ``model.json``.

Deterministic (fixed seed, PYTHONHASHSEED=0, full-batch Adam), numpy only; needs ``faker`` (a
training-time dependency only). About 2.5 minutes on 2 cores: five held-out folds first calibrate a
logit offset per source (``--no-folds`` skips them, about 30 s). Refuses to train when an evaluation
set shares texts or 6-word runs with the training set.
"""

from __future__ import annotations

import argparse
import base64
import importlib.metadata
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import numpy.typing as npt

from plugins._injection.classifier import MODEL_PATH, Classifier, features
from plugins._injection.detector import Detector
from plugins._injection.normalize import normalize
from plugins._injection.trainset import Sourced, examples

DIM = 1 << 18
NGRAMS = (2, 3, 4, 5)
CUES = True
EVAL_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "data"
FOLDS = 5
TARGET_FPR = 0.01  # per source, beyond the rules' own, on held-out training folds (in-distribution: kept strict)
OFFSETS = np.round(np.arange(-2.5, 0.01, 0.1), 2)  # candidate offsets: calibration may only make a source stricter,
# never looser than the fit, because in-distribution folds overstate how separable unseen wordings are
_WORDS = re.compile(r"\w+")


def shingles(text: str, n: int = 6) -> set[tuple[str, ...]]:
    words = _WORDS.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def check_disjoint(train_texts: list[str], eval_dir: Path = EVAL_DIR) -> None:
    """Fail when an evaluation text, or a 6-word run of one, also occurs in the training texts."""
    evals = [
        json.loads(line)["text"]
        for path in sorted(eval_dir.glob("injection_*.jsonl"))
        for line in path.read_text().splitlines()
        if line.strip()
    ]
    train_set = {t.lower() for t in train_texts}
    train_sh: set[tuple[str, ...]] = set().union(*(shingles(t) for t in train_texts))
    clashes = [t for t in evals if t.lower() in train_set or shingles(t) & train_sh]
    if clashes:
        raise SystemExit(f"{len(clashes)} evaluation texts overlap the training set, e.g. {clashes[0][:80]!r}")


def train(
    rows: list[npt.NDArray[np.int64]], y: npt.NDArray[np.float64], epochs: int = 300, l2: float = 1e-5
) -> tuple[npt.NDArray[np.float64], float]:
    """Class-balanced logistic regression on L2-normalised binary features, full-batch Adam."""
    row_ids = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])
    cols = np.concatenate(rows)
    vals = np.concatenate([np.full(len(r), 1 / np.sqrt(max(len(r), 1))) for r in rows])
    pos = y.mean()
    sample_w = np.where(y == 1, 0.5 / pos, 0.5 / (1 - pos)) / len(y)
    w, b = np.zeros(DIM), 0.0
    m, v, mb, vb = np.zeros(DIM), np.zeros(DIM), 0.0, 0.0
    lr, beta1, beta2 = 0.05, 0.9, 0.999
    for t in range(1, epochs + 1):
        z = np.bincount(row_ids, weights=w[cols] * vals, minlength=len(y)) + b
        err = (1 / (1 + np.exp(-z)) - y) * sample_w
        g = np.bincount(cols, weights=err[row_ids] * vals, minlength=DIM) + l2 * w
        gb = float(err.sum())
        m, v = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g * g
        mb, vb = beta1 * mb + (1 - beta1) * gb, beta2 * vb + (1 - beta2) * gb * gb
        w -= lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + 1e-8)
        b -= lr * (mb / (1 - beta1**t)) / (np.sqrt(vb / (1 - beta2**t)) + 1e-8)
    return w, b


def held_out_scores(
    data: list[Sourced], rows: list[npt.NDArray[np.int64]], y: npt.NDArray[np.float64]
) -> list[tuple[float, float]]:
    """``(rule score, classifier logit)`` of every example from a model trained without its fold."""
    out: list[tuple[float, float]] = [(0.0, 0.0)] * len(data)
    for fold in range(FOLDS):
        train_ids = [i for i in range(len(data)) if i % FOLDS != fold]
        w, b = train([rows[i] for i in train_ids], y[train_ids])
        detector = Detector(classifier=Classifier(w.astype(np.float32), b, DIM, NGRAMS, cues=CUES))
        for i in range(fold, len(data), FOLDS):
            text, _, _, source = data[i]
            view = normalize(text).text
            rule_score = detector.rule_score(view, source)
            p = max(min(detector.classifier_probability(view, source), 1 - 1e-9), 1e-9)
            out[i] = (rule_score, float(np.log(p / (1 - p))))
    return out


def calibrate(data: list[Sourced], scores: list[tuple[float, float]]) -> dict[str, float]:
    """Per source, the largest logit offset whose held-out benign false-positive rate stays within TARGET_FPR."""
    offsets: dict[str, float] = {}
    for source in ("user", "untrusted"):
        ids = [i for i, ex in enumerate(data) if ex[3] == source]
        r = np.array([scores[i][0] for i in ids])
        z = np.array([scores[i][1] for i in ids])
        lab = np.array([data[i][1] for i in ids])
        rules_fpr = float((r[lab == 0] >= 0.5).mean())  # what the rules alone flag is not the classifier's to fix
        best = float(OFFSETS[0])
        for off in OFFSETS:
            final = 1 - (1 - r) * (1 - 1 / (1 + np.exp(-(z + off))))
            if float((final[lab == 0] >= 0.5).mean()) <= rules_fpr + TARGET_FPR:
                best = float(off)
        final = 1 - (1 - r) * (1 - 1 / (1 + np.exp(-(z + best))))
        print(
            f"{source:9} offset {best:+.1f}: held-out recall {(final[lab == 1] >= 0.5).mean():.3f}, "
            f"fpr {(final[lab == 0] >= 0.5).mean():.4f} (rules alone {rules_fpr:.4f}), n={len(ids)}"
        )
        offsets[source] = best
    return offsets


def main() -> None:
    if os.environ.get("PYTHONHASHSEED") != "0":  # faker draws from sets of words: fix their order too
        os.execve(sys.executable, [sys.executable, "-m", "plugins._injection.train", *sys.argv[1:]],
                  {**os.environ, "PYTHONHASHSEED": "0"})  # fmt: skip
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--out", type=Path, default=MODEL_PATH)
    parser.add_argument("--no-folds", dest="folds", action="store_false", help="skip the per-source calibration")
    args = parser.parse_args()
    data = examples(args.seed)
    check_disjoint([t for t, *_ in data])
    rows = [features(normalize(text).text, DIM, NGRAMS, CUES) for text, *_ in data]
    y = np.array([label for _, label, *_ in data], dtype=np.float64)
    offsets = calibrate(data, held_out_scores(data, rows, y)) if args.folds else {}
    w, b = train(rows, y)
    scale = float(np.abs(w).max()) / 127 or 1.0
    q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
    model = {
        "format": "chaperone-injection-lr/2",
        "dim": DIM,
        "ngrams": list(NGRAMS),
        "cues": CUES,
        "scale": scale,
        "bias": b,
        "source_bias": offsets,
        "trained_on": {
            "examples": len(data),
            "attacks": int(y.sum()),
            "seed": args.seed,
            "python": ".".join(map(str, sys.version_info[:2])),  # the stdlib docstrings are training text
            "faker": importlib.metadata.version("faker"),
        },
        "weights_int8": base64.b64encode(q.tobytes()).decode(),
    }
    args.out.write_text(json.dumps(model))
    print(f"trained on {len(data)} examples ({int(y.sum())} attacks); wrote {args.out.name}")


if __name__ == "__main__":
    main()
