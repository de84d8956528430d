"""Reference scorers: an answer and its row in, a score in [0, 1] out (pure, no network).

- ``exact``: the answer equals ``expected`` after stripping surrounding whitespace.
- ``normalized``: equal after Unicode NFKC, case folding, punctuation and English articles removed,
  whitespace collapsed (the SQuAD normalisation, made Unicode-aware).
- ``contains``: the normalised ``expected`` occurs in the normalised answer.
- ``regex``: the row's ``pattern`` matches somewhere in the answer (``re.search``).
- ``f1``: token F1 between the normalised answer and ``expected`` (SQuAD style, bag of tokens).
- ``bleu`` / ``chrf``: sacrebleu's sentence BLEU (13a tokens, exponential smoothing) and chrF,
  divided by 100. The summary also carries sacrebleu's corpus BLEU/chrF on its usual 0-100 scale.
- ``rouge1`` / ``rouge2`` / ``rougeL``: rouge-score F-measures with a Unicode tokenizer (``\\w+`` over
  case-folded text; rouge-score's own drops every non-ASCII letter), no stemming.
- ``json_schema``: the answer is JSON (a markdown fence allowed) valid for the row's ``schema``
  (draft 2020-12); rows without a ``schema`` are not scored by it.
- ``embedding``: cosine similarity of wordllama embeddings (256-d, weights shipped in its wheel),
  clipped at 0.

A scorer whose field the row lacks (``expected``, ``pattern``, ``schema``) is not applicable: it yields None and
the row is left out of that scorer's mean and of its cutoff.
"""

from __future__ import annotations

import functools
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regex  # type: ignore[import-untyped]

from evals.data import Row

_WORD = regex.compile(r"\w+")
_PUNCT = regex.compile(r"[\p{P}\p{S}]+")
_ARTICLES = regex.compile(r"\b(?:a|an|the)\b")


def normalize(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _PUNCT.sub(" ", text)
    return " ".join(_ARTICLES.sub(" ", text).split())


def tokens(text: str) -> list[str]:
    """Unicode word tokens of case-folded text (the ROUGE tokenizer)."""
    found: list[str] = _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
    return found


class UnicodeTokenizer:
    """rouge-score's tokenizer interface (``tokenize(text) -> list[str]``) over ``\\w+``."""

    def tokenize(self, text: str) -> list[str]:
        return tokens(text)


def exact(answer: str, expected: str) -> float:
    return float(answer.strip() == expected.strip())


def normalized(answer: str, expected: str) -> float:
    return float(normalize(answer) == normalize(expected))


def contains(answer: str, expected: str) -> float:
    return float(normalize(expected) in normalize(answer))


def token_f1(answer: str, expected: str) -> float:
    got, want = normalize(answer).split(), normalize(expected).split()
    if not got or not want:
        return float(got == want)
    common = sum((Counter(got) & Counter(want)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(got), common / len(want)
    return 2 * precision * recall / (precision + recall)


def bleu(answer: str, expected: str) -> float:
    import sacrebleu

    return float(sacrebleu.sentence_bleu(answer, [expected]).score) / 100


def chrf(answer: str, expected: str) -> float:
    import sacrebleu

    return float(sacrebleu.sentence_chrf(answer, [expected]).score) / 100


_ROUGE: Any = None
_ROUGE_LOCK = threading.Lock()


@functools.lru_cache(maxsize=256)  # rouge1, rouge2 and rougeL of one answer come from one scoring
def rouge(answer: str, expected: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures (``rouge1``, ``rouge2``, ``rougeL``)."""
    global _ROUGE
    with _ROUGE_LOCK:
        if _ROUGE is None:
            from rouge_score import rouge_scorer  # type: ignore[import-untyped]

            _ROUGE = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=UnicodeTokenizer())
    scores = _ROUGE.score(expected, answer)
    return {name: float(score.fmeasure) for name, score in scores.items()}


def json_valid(answer: str, schema: dict[str, Any] | None) -> float:
    from jsonschema import Draft202012Validator

    from plugins._schema.check import NotJson, parse_json

    try:
        value = parse_json(answer)
    except NotJson:
        return 0.0
    return 1.0 if schema is None else float(Draft202012Validator(schema).is_valid(value))


class Embedder:
    """wordllama, loaded once from the weights inside its wheel (no download)."""

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def similarity(self, a: str, b: str) -> float:
        import numpy as np

        with self._lock:
            if self._model is None:
                import wordllama  # type: ignore[import-untyped]

                self._model = wordllama.WordLlama.load(
                    dim=256, cache_dir=Path(wordllama.__file__).parent, disable_download=True
                )
            va, vb = self._model.embed([a, b], norm=True)
        return max(0.0, float(np.dot(va, vb)))


EMBEDDER = Embedder()


@dataclass(frozen=True, slots=True)
class Scorer:
    name: str
    needs: str  # the row field it needs: expected, pattern or schema
    score: Callable[[str, Row], float]


def _ref(fn: Callable[[str, str], float]) -> Callable[[str, Row], float]:
    return lambda answer, row: fn(answer, row.expected or "")


def _rouge_part(part: str) -> Callable[[str, Row], float]:
    return lambda answer, row: rouge(answer, row.expected or "")[part]


REFERENCE: dict[str, Scorer] = {
    s.name: s
    for s in (
        Scorer("exact", "expected", _ref(exact)),
        Scorer("normalized", "expected", _ref(normalized)),
        Scorer("contains", "expected", _ref(contains)),
        Scorer("regex", "pattern", lambda answer, row: float(regex.search(row.pattern or "", answer) is not None)),
        Scorer("f1", "expected", _ref(token_f1)),
        Scorer("bleu", "expected", _ref(bleu)),
        Scorer("chrf", "expected", _ref(chrf)),
        Scorer("rouge1", "expected", _rouge_part("rouge1")),
        Scorer("rouge2", "expected", _rouge_part("rouge2")),
        Scorer("rougeL", "expected", _rouge_part("rougeL")),
        Scorer("json_schema", "schema", lambda answer, row: json_valid(answer, row.schema)),
        Scorer("embedding", "expected", lambda answer, row: EMBEDDER.similarity(answer, row.expected or "")),
    )
}


def applicable(scorer: Scorer, row: Row) -> bool:
    return getattr(row, scorer.needs) is not None


def score_row(names: list[str], answer: str, row: Row) -> dict[str, float]:
    """The reference scores of one answer (only the applicable scorers among ``names``)."""
    out: dict[str, float] = {}
    for name in names:
        scorer = REFERENCE.get(name)
        if scorer is not None and applicable(scorer, row):
            out[name] = round(scorer.score(answer, row), 6)
    return out


def corpus_scores(pairs: list[tuple[str, str]]) -> dict[str, float]:
    """sacrebleu's corpus BLEU and chrF (0-100) over (answer, expected) pairs."""
    if not pairs:
        return {}
    import sacrebleu

    hyps, refs = [a for a, _ in pairs], [[e for _, e in pairs]]
    return {
        "bleu": round(float(sacrebleu.corpus_bleu(hyps, refs).score), 4),
        "chrf": round(float(sacrebleu.corpus_chrf(hyps, refs).score), 4),
    }
