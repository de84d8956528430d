"""The reference scorers against values worked out by hand, and the pieces that need no network."""

from __future__ import annotations

import math

import pytest

from evals import gate, judge, perplexity
from evals.compare import Side, compare
from evals.data import Row
from evals.scorers import normalize, score_row

ROW = Row("r", [{"role": "user", "content": "q"}], expected="Mock reply to: red green blue purple")
ANSWER = "Mock reply to: red green blue yellow"


def test_scores_match_hand_computed_values() -> None:
    scores = score_row(["exact", "normalized", "contains", "f1", "bleu", "rouge1", "rouge2", "rougeL"], ANSWER, ROW)
    assert scores["exact"] == 0.0 and scores["normalized"] == 0.0 and scores["contains"] == 0.0
    # 7 normalised tokens each, 6 shared: P = R = F1 = 6/7
    assert scores["f1"] == pytest.approx(6 / 7, abs=1e-6)
    # 13a tokens "Mock reply to : red green blue X": n-gram precisions 7/8, 6/7, 5/6, 4/5, no brevity penalty
    assert scores["bleu"] == pytest.approx((7 / 8 * 6 / 7 * 5 / 6 * 4 / 5) ** 0.25, abs=1e-6)
    # ROUGE over \w+ tokens (the colon is not a token): 6 of 7 unigrams, 5 of 6 bigrams, LCS 6 of 7
    assert scores["rouge1"] == pytest.approx(6 / 7, abs=1e-6)
    assert scores["rouge2"] == pytest.approx(5 / 6, abs=1e-6)
    assert scores["rougeL"] == pytest.approx(6 / 7, abs=1e-6)


def test_bleu_with_a_zero_count_uses_exponential_smoothing() -> None:
    row = Row("r", [{"role": "user", "content": "q"}], expected="one two three four")
    # 1-4 gram matches 3/4, 2/3, 1/2, 0/1 -> the zero becomes 1/(2*1): (3/4 * 2/3 * 1/2 * 1/2) ** (1/4)
    assert score_row(["bleu"], "one two three five", row)["bleu"] == pytest.approx(0.125**0.25, abs=1e-6)


def test_normalisation_is_unicode_aware() -> None:
    assert normalize("  The Grüße, aus KÖLN!  ") == "grüsse aus köln"  # full case folding: ß -> ss
    row = Row("r", [{"role": "user", "content": "q"}], expected="Grüße aus Köln")
    scores = score_row(["normalized", "rouge1", "f1", "exact"], "grüße aus köln.", row)
    assert scores == {"normalized": 1.0, "rouge1": 1.0, "f1": 1.0, "exact": 0.0}
    # rouge-score's own tokenizer keeps only [a-z0-9]: "grüße" would become "gr e"; ours keeps the words
    other = score_row(["rouge1"], "Grüße aus Berlin", row)
    assert other["rouge1"] == pytest.approx(2 / 3, abs=1e-6)


def test_regex_schema_and_inapplicable_scorers() -> None:
    row = Row("r", [{"role": "user", "content": "q"}], pattern=r"\d{3}",
              schema={"type": "object", "required": ["a"], "properties": {"a": {"type": "integer"}}})  # fmt: skip
    assert score_row(["regex", "json_schema", "exact"], '```json\n{"a": 123}\n```', row) == {
        "regex": 1.0,
        "json_schema": 1.0,
    }  # fmt: skip  (no expected: exact does not apply)
    assert score_row(["json_schema"], '{"a": "x"}', row) == {"json_schema": 0.0}
    assert score_row(["json_schema"], "not json", row) == {"json_schema": 0.0}


def test_embedding_similarity_ranks_paraphrase_above_unrelated() -> None:
    row = Row("r", [{"role": "user", "content": "q"}], expected="The cat is sleeping on the sofa.")
    same = score_row(["embedding"], "The cat is sleeping on the sofa.", row)["embedding"]
    para = score_row(["embedding"], "A cat sleeps on the couch.", row)["embedding"]
    unrelated = score_row(["embedding"], "Quarterly revenue grew in most regions.", row)["embedding"]
    assert same == pytest.approx(1.0, abs=1e-4) and para > unrelated + 0.3


def test_perplexity_from_echoed_prompt_logprobs() -> None:
    row = Row("r", [{"role": "user", "content": "Hi"}], expected="Hello there")
    prefix, prompt = perplexity.render(row)
    assert prompt == "user: Hi\nassistant: Hello there"
    start = len(prefix)
    response = {"choices": [{"logprobs": {
        "tokens": ["user", ":", " Hi", "\n", "assistant", ":", " Hello", " there", " !"],
        "token_logprobs": [None, -1.0, -2.0, -0.5, -0.1, -0.2, -1.0, -3.0, -9.0],
        "text_offset": [0, 4, 5, 8, 9, 18, start, start + 6, len(prompt)],
    }}]}  # fmt: skip
    # only " Hello" and " there" (the generated " !" is after the prompt): exp(-(-1 - 3) / 2)
    assert perplexity.from_response(response, len(prefix), len(prompt)) == pytest.approx(math.exp(2.0), rel=1e-6)
    assert perplexity.from_response({"choices": [{"logprobs": None}]}, len(prefix), len(prompt)) is None


def test_cutoffs_and_gate_rules() -> None:
    cutoffs = gate.parse_cutoffs(["f1=0.8", "perplexity=20"], ["f1", "perplexity"])
    assert gate.failed_cutoffs({"f1": 0.9, "perplexity": 12.0}, cutoffs) == []
    assert gate.failed_cutoffs({"f1": 0.5}, cutoffs) == ["f1=0.5 (cutoff 0.8)"]  # perplexity absent: skipped
    assert gate.failed_cutoffs({"f1": 0.9, "perplexity": 30.0}, cutoffs) == ["perplexity=30.0 (cutoff 20.0)"]
    assert gate.failed_cutoffs({"judge": None}, {"judge": 0.5}) == ["judge=None (cutoff 0.5)"]
    for bad in ("f1", "nope=1", "f1=high"):
        with pytest.raises(gate.GateError):
            gate.parse_cutoffs([bad], ["f1"])


def test_judge_votes_agreement_and_invalid_replies() -> None:
    assert judge.read('{"verdict": "fail", "reasons": ["wrong year"]}') == ("fail", ["wrong year"])
    assert judge.read('```json\n{"verdict": "pass", "reasons": []}\n```') == ("pass", [])
    assert judge.read('Sure! Here it is: {"verdict') is None
    assert judge.read('{"mock_wrong": true}') is None
    assert judge.read("PASS, looks fine") is None  # prose is not a JSON verdict: retried, then counted
    two_to_one = judge.tally(["pass", "fail", "pass"], [[], [], []])
    assert (two_to_one.label, two_to_one.score, two_to_one.agreement) == ("pass", pytest.approx(2 / 3, abs=1e-5),
                                                                          pytest.approx(2 / 3, abs=1e-5))  # fmt: skip
    tie = judge.tally(["pass", "fail"], [[], []])
    assert (tie.label, tie.agreement) == ("fail", 0.5)
    assert judge.tally([], [], invalid=3).label is None


def _side(label: str, values: dict[str, float]) -> Side:
    return Side(label, "m", {k: {"f1": v, "passed": float(v > 0.5)} for k, v in values.items()})


def test_compare_verdicts() -> None:
    base = {f"r{i}": (i % 10) / 10 for i in range(60)}
    same = compare(_side("a", base), _side("b", dict(base)), "f1")
    assert same["verdict"] == "no difference" and same["scorers"]["f1"]["ci95"] == [0.0, 0.0]
    assert same["scorers"]["f1"]["ties"] == 60
    better = compare(_side("a", base), _side("b", {k: min(1.0, v + 0.2) for k, v in base.items()}), "f1")
    f1 = better["scorers"]["f1"]
    assert better["verdict"] == "B better" and f1["wins"] > 40 and f1["losses"] == 0 and f1["ci95"][0] > 0
    worse = compare(_side("a", base), _side("b", {k: v / 2 for k, v in base.items()}), "f1")
    assert worse["verdict"] == "B worse"
