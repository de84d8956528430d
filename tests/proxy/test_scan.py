"""The scan engine: a policy's scan methods over JSONL prompts, in order, with bad lines and a summary."""

from __future__ import annotations

import asyncio
import io
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy.registry import PluginRegistry, build_registry
from proxy.scan import ScanOptions, _batches, parse_line, run

POLICY = """
backends:
  stub: {url: "http://127.0.0.1:9/v1"}
models:
  first-model: {backend: stub}
  "*": {backend: stub}
chains:
  default:
    - lifecycle: {}
    - spotter: {words: {alice: PERSON, "alice@example.com": EMAIL}, block: [EMAIL]}
    - scorer: {threshold: 0.5}
  twice:
    - spotter: {words: {alice: PERSON}}
    - spotter: {words: {bob: PERSON}, block: [PERSON]}
"""


@pytest.fixture
def scan_registry() -> PluginRegistry:
    return build_registry(entry_points=False, extra=("tests.scan_plugins",))


class Run:
    def __init__(self, code: int, out: str, err: str, home: Path) -> None:
        self.code = code
        self.results = [json.loads(line) for line in out.splitlines()]
        self.err = err
        self.home = home


@pytest.fixture
def scan(tmp_path: Path, scan_registry: PluginRegistry) -> Any:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)

    def go(lines: list[str] | bytes, **options: Any) -> Run:
        data = lines if isinstance(lines, bytes) else "".join(line + "\n" for line in lines).encode()
        options.setdefault("progress", "none")
        out, err = io.StringIO(), io.StringIO()
        home = tmp_path / "home"
        opts = ScanOptions(policy=options.pop("policy", policy), input="-", home=home, **options)
        code = run(opts, scan_registry, stdin=io.BytesIO(data), stdout=out, stderr=err)
        return Run(code, out.getvalue(), err.getvalue(), home)

    return go


def _line(**item: Any) -> str:
    return json.dumps(item)


def test_results_come_out_in_input_order_while_inputs_run_concurrently(scan: Any) -> None:
    # Input 1 waits until input 2 has been scanned: it finishes last, but is still written first.
    lines = [_line(id="a", text="wait score=0.9"), _line(id="b", text="release"), _line(id="c", text="hi alice")]
    result = scan(lines, concurrency=4)
    assert result.code == 0
    assert [r["id"] for r in result.results] == ["a", "b", "c"]
    assert [r["line"] for r in result.results] == [1, 2, 3]
    first = result.results[0]["steps"]
    assert first == {"spotter": None, "scorer": {"score": 0.9, "categories": ["override"], "action": "block"}}
    assert result.results[2]["steps"]["spotter"] == {
        "entities": [{"type": "PERSON", "start": 3, "end": 8, "score": 1.0, "path": ["messages", 0, "content"]}],
        "action": "pseudonymize",
    }


def test_bad_lines_are_reported_with_their_line_number_and_the_run_goes_on(scan: Any) -> None:
    lines = [
        "{not json",
        "[1, 2]",
        _line(id=1),
        _line(id=2, text=["a"]),
        _line(id=[1], text="x"),
        _line(id=3, messages=[{"role": "robot", "content": "x"}]),
        _line(id=4, text="x", messages=[{"role": "user", "content": "x"}]),
        "",
        _line(id=5, text="fine"),
    ]
    result = scan(lines)
    assert result.code == 0
    errors = {r["line"]: r for r in result.results if "error" in r}
    assert sorted(errors) == [1, 2, 3, 4, 5, 6, 7]  # the blank line 8 is skipped, not an error
    assert errors[1]["error"].startswith("line 1: not JSON:") and "column" in errors[1]["error"]
    assert errors[2]["error"] == "line 2: expected a JSON object with 'text' or 'messages'"
    assert errors[3] == {
        "id": 1, "line": 3, "error": "line 3: needs 'text' (a string) or 'messages' (an array of chat messages)"
    }  # fmt: skip
    assert errors[4]["error"] == "line 4: 'text' must be a string"
    assert errors[5]["error"] == "line 5: 'id' must be a string or an integer"
    assert "messages[0].role" in errors[6]["error"] and errors[6]["id"] == 3
    assert errors[7]["error"] == "line 7: give 'text' or 'messages', not both"
    assert result.results[-1]["id"] == 5 and "steps" in result.results[-1]
    assert "7 bad lines (line 1, 2, 3, 4, 5, 6, 7)" in result.err


def test_a_line_that_is_not_utf8_is_a_bad_line_too(scan: Any) -> None:
    result = scan(b'{"id": 1, "text": "\xff"}\n{"id": 2, "text": "ok"}\n')
    assert "not JSON" in result.results[0]["error"] and "UTF-8" in result.results[0]["error"]
    assert result.results[1]["id"] == 2


def test_messages_are_used_as_is_with_the_policys_first_model(scan_registry: PluginRegistry) -> None:
    messages = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hi"}]
    ident, request = parse_line(json.dumps({"id": "m", "messages": messages}).encode(), 1, "first-model")
    assert ident == "m" and not isinstance(request, str)
    assert request.body == {"model": "first-model", "messages": messages}
    _, text_request = parse_line(b'{"text": "hello"}', 1, "m")
    assert not isinstance(text_request, str)
    assert text_request.messages == [{"role": "user", "content": "hello"}]


def test_summary_counts_actions_entities_and_scores(scan: Any, tmp_path: Path) -> None:
    lines = [
        _line(id=1, text="mail alice@example.com score=0.8"),
        _line(id=2, text="alice says score=0.2"),
        _line(id=3, text="nothing here"),
        "oops",
    ]
    summary_path = tmp_path / "summary.json"
    result = scan(lines, summary_json=summary_path)
    summary = json.loads(summary_path.read_text())
    assert (summary["lines"], summary["scanned"], summary["errors"], summary["error_lines"]) == (4, 3, 1, [4])
    assert (summary["flagged"], summary["would_block"]) == (2, 1)
    assert summary["not_scanned"] == ["lifecycle"]
    spotter, scorer = summary["steps"]["spotter"], summary["steps"]["scorer"]
    assert spotter["actions"] == {"block": 1, "pseudonymize": 1}
    assert spotter["entities"] == {"PERSON": 2, "EMAIL": 1} and spotter["inputs_with_entities"] == 2
    assert (spotter["reports"], spotter["flagged"], spotter["would_block"]) == (2, 2, 1)
    assert scorer["actions"] == {"allow": 2, "block": 1}
    assert scorer["score"]["mean"] == pytest.approx(1.0 / 3) and scorer["score"]["max"] == 0.8
    assert scorer["score"]["histogram"] == [1, 0, 1, 0, 0, 0, 0, 0, 1, 0]
    assert (scorer["flagged"], scorer["would_block"]) == (1, 1)
    # The same, for a person reading stderr.
    assert "spotter  2 flagged, 1 would block" in result.err
    assert "entities in 2 inputs: PERSON 2, EMAIL 1" in result.err
    assert "score: mean 0.333, max 0.800 over 3" in result.err
    assert "not scanned (no scan method): lifecycle" in result.err


def test_a_step_used_twice_reports_under_a_numbered_key(scan: Any) -> None:
    result = scan([_line(id=1, text="alice and bob")], chain="twice")
    steps = result.results[0]["steps"]
    assert steps["spotter"]["action"] == "pseudonymize"
    assert steps["spotter#2"]["action"] == "block"
    assert "spotter#2" in result.err


def test_fail_on_block_exits_1_only_when_an_input_would_be_blocked(scan: Any) -> None:
    assert scan([_line(text="score=0.1")], fail_on=frozenset({"block"})).code == 0
    blocked = scan([_line(text="score=0.1"), _line(text="score=0.9")], fail_on=frozenset({"block"}))
    assert blocked.code == 1
    assert "--fail-on block: 1 input would be blocked → exit 1" in blocked.err
    assert scan([_line(text="score=0.9")]).code == 0  # without --fail-on a block is only reported


def test_fail_on_flag_and_error(scan: Any) -> None:
    assert scan([_line(text="hi alice")], fail_on=frozenset({"flag"})).code == 1
    assert scan([_line(text="hi")], fail_on=frozenset({"flag", "error"})).code == 0
    assert scan(["nope"], fail_on=frozenset({"error"})).code == 1


def test_a_failing_scan_is_reported_for_that_input_and_step_only(scan: Any) -> None:
    result = scan([_line(id=1, text="boom alice"), _line(id=2, text="score=0.7")], fail_on=frozenset({"error"}))
    first = result.results[0]["steps"]
    assert first["scorer"] == {"error": "RuntimeError: the classifier fell over"}
    assert first["spotter"]["action"] == "pseudonymize"
    assert result.results[1]["steps"]["scorer"]["action"] == "block"
    assert "1 FAILED" in result.err and result.code == 1


def test_an_unknown_chain_names_the_chains_there_are(scan: Any) -> None:
    result = scan([_line(text="x")], chain="nope")
    assert result.code == 2 and result.results == []
    assert "no chain named 'nope'" in result.err and "(chains: default, twice)" in result.err


def test_a_broken_policy_is_reported_with_its_yaml_path(scan: Any, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(POLICY.replace("threshold: 0.5", "threshold: high"))
    result = scan([_line(text="x")], policy=bad)
    assert result.code == 2
    assert "chains.default[2].scorer.threshold" in result.err


def test_startup_and_shutdown_run_with_the_store_and_the_requests_never_do(scan: Any) -> None:
    result = scan([_line(text="hi")])
    assert result.code == 0
    assert (result.home / "lifecycle-started").exists() and (result.home / "lifecycle-stopped").exists()
    assert (result.home / "store").is_dir()  # the policy's default diskcache store, under the home


def test_plain_progress_lines_when_not_on_a_terminal(scan: Any) -> None:
    result = scan([_line(text="a"), _line(text="b")], progress="auto", progress_interval_s=0)
    progress = [line for line in result.err.splitlines() if "inputs/s" in line]
    assert progress[0].startswith("chaperone scan: 1 inputs, 0 bad")
    assert progress[-1].startswith("chaperone scan: 2 inputs")
    assert "\r" not in result.err
    quiet = scan([_line(text="a")], progress="none", progress_interval_s=0)
    assert "inputs/s" not in quiet.err and "chaperone scan: 1 input in" in quiet.err


def test_results_can_go_to_a_file(scan: Any, tmp_path: Path) -> None:
    out = tmp_path / "report.jsonl"
    result = scan([_line(id=7, text="alice")], out=out)
    assert result.results == []
    assert json.loads(out.read_text())["steps"]["spotter"]["action"] == "pseudonymize"


def test_a_chain_without_scan_methods_says_nothing_was_checked(scan: Any, tmp_path: Path) -> None:
    policy = tmp_path / "plain.yaml"
    policy.write_text(textwrap.dedent(POLICY).split("chains:")[0] + "chains:\n  default: [{params: {}}]\n")
    result = scan([_line(id=1, text="x")], policy=policy)
    assert result.results == [{"id": 1, "line": 1, "steps": {}}]
    assert "not scanned (no scan method): params" in result.err
    assert "nothing was checked" in result.err


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200).map(lambda b: b.replace(b"\r", b"")), size=st.integers(1, 40))
def test_the_input_is_cut_into_the_same_lines_whatever_the_read_size(data: bytes, size: int) -> None:
    expected = data.split(b"\n")
    if expected[-1] == b"":
        expected.pop()

    async def lines() -> list[bytes]:
        return [line async for batch in _batches(io.BytesIO(data), size) for line in batch]

    assert asyncio.run(lines()) == expected
