"""The workload: seeded, shaped as asked (token lengths by tiktoken), and the plugin knobs mark their prompts."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import orjson
import pytest

from bench.workload import Workload, WorkloadSpec
from proxy.tokens import get_encoding


def spec(**kw: object) -> WorkloadSpec:
    base: dict[str, object] = {"model": "gpt-4o", "input_tokens": 100, "output_tokens": 20}
    base.update(kw)
    return WorkloadSpec(**base)  # type: ignore[arg-type]


def prompt(body: bytes) -> str:
    return str(orjson.loads(body)["messages"][-1]["content"])


def test_the_same_seed_gives_the_same_workload_and_another_seed_another() -> None:
    knobs = {"cache_share": 0.2, "pii_share": 0.2, "injection_share": 0.1, "prefix_share": 0.5, "input_spread": 0.3}
    a = [p.body for p in Workload(spec(seed=11, **knobs)).take(50)]
    b = [p.body for p in Workload(spec(seed=11, **knobs)).take(50)]
    c = [p.body for p in Workload(spec(seed=12, **knobs)).take(50)]
    assert a == b
    assert a != c


def test_prompt_lengths_follow_the_requested_tokens() -> None:
    enc = get_encoding("o200k_base")
    fixed = [len(enc.encode_ordinary(prompt(p.body))) for p in Workload(spec()).take(30)]
    assert all(98 <= n <= 102 for n in fixed), fixed
    spread = [len(enc.encode_ordinary(prompt(p.body))) for p in Workload(spec(input_spread=0.3, seed=3)).take(200)]
    mean = sum(spread) / len(spread)
    assert 90 <= mean <= 110 and min(spread) < 75 and max(spread) > 125
    outputs = {orjson.loads(p.body)["max_tokens"] for p in Workload(spec(output_spread=0.5)).take(50)}
    assert len(outputs) > 10


def test_knobs_mark_their_share_of_prompts() -> None:
    planned = Workload(spec(cache_share=0.2, pii_share=0.2, injection_share=0.2, seed=5)).take(1000)
    kinds = Counter(p.kind for p in planned)
    for kind in ("repeat", "pii", "injection"):
        assert 150 <= kinds[kind] <= 250, kinds
    by_index = {p.index: p for p in planned}
    for p in planned:
        if p.kind == "repeat":
            assert p.repeat_of is not None and p.body == by_index[p.repeat_of].body  # an exact earlier body
        if p.kind == "pii":
            assert "@example.com" in prompt(p.body) and "+1 415 555" in prompt(p.body)
    assert all(orjson.loads(p.body)["temperature"] == 0.0 for p in planned)  # cacheable


def test_a_shared_prefix_starts_the_chosen_share_of_prompts() -> None:
    planned = Workload(spec(prefix_share=0.5, prefix_tokens=40, seed=2)).take(200)
    with_prefix = [prompt(p.body) for p in planned if p.prefix]
    assert 70 <= len(with_prefix) <= 130
    head = with_prefix[0][:150]
    assert all(text.startswith(head) for text in with_prefix)
    assert not any(prompt(p.body).startswith(head) for p in planned if not p.prefix)


def test_mock_directives_streaming_and_completions_bodies() -> None:
    (chat,) = Workload(spec(mock=True, mock_fault="latency_ms=5", output_tokens=7)).take(1)
    body = orjson.loads(chat.body)
    assert body["messages"][-1]["content"].endswith("[[mock:tokens=7,latency_ms=5]]")
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    (legacy,) = Workload(spec(endpoint="completions", stream=False)).take(1)
    body = orjson.loads(legacy.body)
    assert "prompt" in body and "messages" not in body and "stream" not in body


def test_a_jsonl_dataset_of_prompts_and_conversations(tmp_path: Path) -> None:
    data = tmp_path / "prompts.jsonl"
    rows = [{"prompt": "first question"}, {"messages": [{"role": "user", "content": "second"}], "output_tokens": 9}]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    planned = Workload(spec(dataset=str(data))).take(4)
    texts = sorted({prompt(p.body) for p in planned})
    assert texts == ["first question", "second"]
    assert {orjson.loads(p.body)["max_tokens"] for p in planned if prompt(p.body) == "second"} == {9}


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not JSON"),
        ('{"other": 1}', "needs a 'prompt'"),
        ('{"messages": []}', "'messages' must be a non-empty list"),
    ],
)
def test_a_bad_dataset_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"prompt": "ok"}\n' + line + "\n")
    with pytest.raises(ValueError, match=f"bad.jsonl:2: {message}"):
        Workload(spec(dataset=str(data)))


def test_shares_over_one_are_refused() -> None:
    with pytest.raises(ValueError, match="must not exceed 1"):
        Workload(spec(cache_share=0.6, pii_share=0.6))
