"""``chaperone dataset export``: every format valid line by line, duplicates gone, stable stratified splits,
no eval-set leakage, errors and unwanted languages dropped, and a manifest that matches the files."""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from dataset.clean import NearIndex
from dataset.cli import main as dataset_main
from dataset.cli import store_path as find_store
from dataset.formats import FORMATS, problems
from proxy import cli
from tests.dataset.helpers import WORDS, distinct, make_store, row

LONG = " ".join(f"{WORDS[i % len(WORDS)]}{i}" for i in range(100))  # 100 distinct words
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


def rows() -> list[dict[str, Any]]:
    out = [
        row("exact-1", "What is the capital of France?", "Paris.", ts=1),
        row("exact-2", "what is the  CAPITAL of france?", "paris.", ts=2),  # same after normalising
        row("near-1", LONG, "A long answer.", ts=3),
        row("near-2", LONG.replace("kilo10", "kilogram10"), "A long answer.", ts=4),  # one word changed
        row("error", "Why did this fail?", None, ts=5, status=502, error_code="upstream_error"),
        row("metadata", "", None, ts=6, retention="metadata_only", request=None),
        row("french", "Quelle est la capitale de la France et pourquoi est-elle si belle ?",
            "La capitale de la France est Paris, une ville magnifique.", ts=7),
        row("tools", "What is the weather in Paris?", "", ts=8,
            request={"messages": [{"role": "user", "content": "What is the weather in Paris?"}], "tools": TOOLS}),
        row("fixed", "How many legs does a spider have?", "Six.", ts=9,
            drafts=[{"source": "schema_repair", "message": {"role": "assistant", "content": "Sure! {\"legs\":"}}]),
        row("judged", "Name the largest planet in the solar system.", "Jupiter is the largest planet.", ts=10,
            verdicts={"judge": "refined"}, judge_score=0.9,
            drafts=[{"source": "judge_refine", "message": {"role": "assistant", "content": "Saturn is largest."}}]),
        row("rejected-final", "Name a prime number above ten.", "Twelve.", ts=11, verdicts={"judge": "fail"},
            drafts=[{"source": "judge_refine", "message": {"role": "assistant", "content": "Nine."}}]),
    ]  # fmt: skip
    out += [row(f"bulk-{n}", distinct(n), f"Answer number {n} about the story.", ts=20 + n,
                model="m1" if n % 3 else "m2", key="app1" if n % 2 else "app2") for n in range(30)]  # fmt: skip
    out[7]["answer"] = {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
        ],
    }
    return out


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "capture.sqlite"
    store = make_store(path, rows())
    store.set_feedback("fixed", author="app1", good=False)
    store.set_feedback("bulk-3", author="app1", good=False)  # thumbs down, no correction: not an SFT target
    store.set_feedback("bulk-4", author="app1", correction={"role": "assistant", "content": "A better answer four."})
    store.close()
    return path


def export(store: Path, out: Path, *args: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    assert dataset_main(["export", "--store", str(store), "--out", str(out), *args]) == 0
    manifest = json.loads(out.with_name(out.stem + ".manifest.json").read_text())
    return [json.loads(line) for line in out.read_text().splitlines()], manifest


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_is_valid_line_by_line(fmt: str, store_path: Path, tmp_path: Path) -> None:
    lines, manifest = export(store_path, tmp_path / "out.jsonl", "--format", fmt)
    assert lines and all(problems(fmt, line) == [] for line in lines)
    counts = manifest["counts"]
    assert counts["selected"] == 41 and counts["errors_dropped"] == 1 and counts["no_text"] == 1
    assert counts["invalid_dropped"] == 0
    if fmt in ("openai-dpo", "trl"):
        # schema repair, judge refinement, the demonstration; the draft of a final answer the judge failed is not used
        assert manifest["sources"] == {"demonstration": 1, "judge_refine": 1, "schema_repair": 1}
        assert counts["train"] == 3
    else:
        assert counts["exact_duplicates"] == 1 and counts["near_duplicates"] == 1
        assert counts["negative_feedback_dropped"] == 2 and manifest["sources"]["demonstration"] == 1
        assert counts["train"] == 41 - 1 - 1 - 2 - 1 - 1


def test_openai_sft_keeps_tools_and_tool_calls(store_path: Path, tmp_path: Path) -> None:
    lines, _ = export(store_path, tmp_path / "sft.jsonl", "--format", "openai-sft")
    (tool_line,) = [line for line in lines if "tools" in line]
    assert tool_line["tools"] == TOOLS
    assert tool_line["messages"][-1]["tool_calls"][0]["function"]["name"] == "get_weather"
    assert any(line["messages"][-1].get("content") == "A better answer four." for line in lines)  # the correction wins


def test_language_length_and_filters(store_path: Path, tmp_path: Path) -> None:
    lines, manifest = export(store_path, tmp_path / "en.jsonl", "--format", "openai-sft", "--lang", "en")
    assert manifest["counts"]["language_dropped"] >= 1
    assert not any("capitale" in json.dumps(line) for line in lines)
    _, manifest = export(store_path, tmp_path / "m2.jsonl", "--format", "openai-sft", "--model", "m2", "--key", "app2")
    assert manifest["counts"]["selected"] == 5 and manifest["filters"] == {"models": ["m2"], "keys": ["app2"]}
    _, manifest = export(store_path, tmp_path / "js.jsonl", "--format", "openai-sft", "--min-judge-score", "0.8")
    assert manifest["counts"]["selected"] == 1
    _, manifest = export(store_path, tmp_path / "fb.jsonl", "--format", "openai-sft", "--feedback", "corrected")
    assert manifest["counts"]["train"] == 1
    _, manifest = export(store_path, tmp_path / "len.jsonl", "--format", "openai-sft", "--min-chars", "20")
    assert manifest["counts"]["length_dropped"] >= 3  # "Paris.", "Six.", the tool call's short arguments
    _, manifest = export(store_path, tmp_path / "t.jsonl", "--format", "openai-sft", "--since", "1970-01-01T00:00:20")
    assert manifest["counts"]["selected"] == 30


def test_the_split_is_stable_stratified_and_changes_with_the_seed(store_path: Path, tmp_path: Path) -> None:
    args = ("--format", "openai-sft", "--val-fraction", "0.2", "--stratify", "model")
    _, first = export(store_path, tmp_path / "a.jsonl", *args)
    _, again = export(store_path, tmp_path / "b.jsonl", *args)
    assert first["files"]["train"]["sha256"] == again["files"]["train"]["sha256"]
    assert first["files"]["validation"]["sha256"] == again["files"]["validation"]["sha256"]
    labels = [json.loads(line) for line in (tmp_path / "a.labels.jsonl").read_text().splitlines()]
    by_model: dict[str, dict[str, int]] = {}
    for label in labels:
        by_model.setdefault(label["model"], {"train": 0, "validation": 0})[label["split"]] += 1
    for counts in by_model.values():
        total = counts["train"] + counts["validation"]
        assert counts["validation"] == round(total * 0.2)
    _, other = export(store_path, tmp_path / "c.jsonl", *args, "--seed", "another")
    assert other["files"]["validation"]["sha256"] != first["files"]["validation"]["sha256"]
    train = {line for line in (tmp_path / "a.jsonl").read_text().splitlines()}
    assert not train & set((tmp_path / "a.val.jsonl").read_text().splitlines())


def test_an_eval_export_is_a_held_out_set_later_exports_keep_clear_of(store_path: Path, tmp_path: Path) -> None:
    held, _ = export(store_path, tmp_path / "heldout.jsonl", "--format", "eval", "--model", "m2")
    assert len(held) == 9 and all(set(r) == {"id", "messages", "expected"} for r in held)  # bulk-3: thumbs down
    assert held[0]["messages"][-1]["role"] == "user" and held[0]["expected"].startswith("Answer number")
    lines, manifest = export(store_path, tmp_path / "sft.jsonl", "--format", "openai-sft",
                             "--eval-set", str(tmp_path / "heldout.jsonl"))  # fmt: skip
    assert manifest["counts"]["eval_leakage_dropped"] == 9
    assert not {r["messages"][0]["content"] for r in held} & {line["messages"][0]["content"] for line in lines}


def test_nothing_equal_or_near_to_the_eval_set_is_exported(store_path: Path, tmp_path: Path) -> None:
    eval_set = tmp_path / "heldout.jsonl"
    eval_rows = [
        {"id": "e1", "messages": [{"role": "user", "content": "WHAT is the capital of France?"}], "expected": "Paris"},
        {"id": "e2", "messages": [{"role": "user", "content": LONG.replace("zulu25", "zebra25")}]},
        {"id": "e3", "messages": [{"role": "user", "content": distinct(11)}]},
    ]
    eval_set.write_text("".join(json.dumps(r) + "\n" for r in eval_rows))
    lines, manifest = export(store_path, tmp_path / "sft.jsonl", "--format", "openai-sft", "--eval-set", str(eval_set),
                             "--val-fraction", "0.2")  # fmt: skip
    assert manifest["counts"]["eval_leakage_dropped"] == 3 and manifest["eval_set"]["rows"] == 3
    index = NearIndex(0.9)
    for r in eval_rows:
        index.add(r["messages"][0]["content"])
    everything = lines + [json.loads(x) for x in (tmp_path / "sft.val.jsonl").read_text().splitlines()]
    assert all(index.match(line["messages"][0]["content"]) is None for line in everything)


def test_the_manifest_describes_the_files(store_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "sft.jsonl"
    _, manifest = export(store_path, out, "--format", "openai-sft", "--val-fraction", "0.1")
    for name in ("train", "validation", "labels"):
        entry = manifest["files"][name]
        data = (tmp_path / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"] and data.count(b"\n") == entry["lines"]
    assert manifest["tool"] == "chaperone dataset export" and manifest["version"] and manifest["capture_schema"] == 1
    assert manifest["policy_digests"] == ["abc123"] and manifest["format"] == "openai-sft"
    assert str(tmp_path) not in json.dumps(manifest)  # names, not machine paths


def test_list_and_show(store_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert dataset_main(["list", "--store", str(store_path), "--json", "--model", "m2"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(listed) == 10 and {r["model"] for r in listed} == {"m2"}
    assert dataset_main(["show", "judged", "--store", str(store_path)]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["judge_score"] == 0.9 and shown["drafts"][0]["source"] == "judge_refine"
    assert dataset_main(["show", "nope", "--store", str(store_path)]) == 1
    assert dataset_main(["list", "--store", str(store_path.with_name("missing.sqlite"))]) == 2
    assert cli.main(["dataset", "list", "--store", str(store_path), "--json", "--key", "app2"]) == 0  # the CLI wiring
    assert len(capsys.readouterr().out.splitlines()) == 15


def test_the_store_is_found_from_a_policy_or_chaperone_home(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("chains:\n  default: [pii, {capture: {path: data/c.sqlite}}]\n")
    args = argparse.Namespace(store=None, policy=str(policy))
    assert find_store(args, {"CHAPERONE_HOME": str(tmp_path)}) == tmp_path / "data" / "c.sqlite"
    args = argparse.Namespace(store=None, policy=None)
    assert find_store(args, {"CHAPERONE_HOME": str(tmp_path)}) == tmp_path / "capture" / "capture.sqlite"
