"""The format rules every exported line is checked against: broken lines are named, good ones pass."""

from __future__ import annotations

from typing import Any

import pytest

from dataset.formats import problems

USER = {"role": "user", "content": "Hi"}
ANSWER = {"role": "assistant", "content": "Hello!"}
OTHER = {"role": "assistant", "content": "Go away."}
CALL = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}


@pytest.mark.parametrize(
    ("fmt", "line"),
    [
        ("openai-sft", {"messages": [{"role": "system", "content": "Be brief."}, USER, ANSWER]}),
        ("openai-sft", {"messages": [USER, {"role": "assistant", "tool_calls": [CALL]}],
                        "tools": [{"type": "function", "function": {"name": "f"}}]}),
        ("openai-sft", {"messages": [USER, {"role": "assistant", "tool_calls": [CALL]},
                                     {"role": "tool", "tool_call_id": "c1", "content": "42"}, ANSWER]}),
        ("openai-dpo", {"input": {"messages": [USER]}, "preferred_output": [ANSWER], "non_preferred_output": [OTHER]}),
        ("trl", {"prompt": [USER], "chosen": [ANSWER], "rejected": [OTHER]}),
        ("sharegpt", {"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "Hi"},
                                        {"from": "gpt", "value": "Hello!"}]}),
        ("eval", {"id": "r1", "messages": [USER], "expected": "Hello!"}),
    ],
)  # fmt: skip
def test_valid_lines_pass(fmt: str, line: dict[str, Any]) -> None:
    assert problems(fmt, line) == []


@pytest.mark.parametrize(
    ("fmt", "line", "problem"),
    [
        ("openai-sft", {"messages": [USER]}, "the last message must be the assistant's"),
        ("openai-sft", {"messages": []}, "a non-empty list of messages"),
        ("openai-sft", {"messages": [{"role": "robot", "content": "x"}, ANSWER]}, "is not system, user"),
        ("openai-sft", {"messages": [USER, {"role": "assistant", "content": "  "}]}, "non-empty string"),
        ("openai-sft", {"messages": [USER, {"role": "assistant", "tool_calls": [{**CALL, "function": {
            "name": "f", "arguments": "{not json"}}]}]}, "must be a JSON string"),
        ("openai-sft", {"messages": [USER, {"role": "tool", "content": "42"}, ANSWER]}, "needs the id of the call"),
        ("openai-sft", {"messages": [USER, {**ANSWER, "weight": 2}]}, "weight: must be 0 or 1"),
        ("openai-sft", {"messages": [USER, ANSWER], "metadata": {}}, "unknown key 'metadata'"),
        ("openai-sft", {"messages": [USER, ANSWER], "tools": [{"name": "f"}]}, "tools: a list of"),
        ("openai-dpo", {"input": {"messages": [USER, ANSWER]}, "preferred_output": [ANSWER],
                        "non_preferred_output": [OTHER]}, "must end with a user or tool message"),
        ("openai-dpo", {"input": {"messages": [USER]}, "preferred_output": [ANSWER, OTHER],
                        "non_preferred_output": [OTHER]}, "exactly one assistant message"),
        ("openai-dpo", {"input": {"messages": [USER]}, "preferred_output": [ANSWER],
                        "non_preferred_output": [ANSWER]}, "are the same"),
        ("trl", {"prompt": [USER], "chosen": [USER], "rejected": [OTHER]}, "chosen[0].role: must be assistant"),
        ("trl", {"prompt": [], "chosen": [ANSWER], "rejected": [OTHER]}, "prompt: a non-empty list"),
        ("sharegpt", {"conversations": [{"from": "gpt", "value": "x"}]}, "out of turn"),
        ("sharegpt", {"conversations": [{"from": "human", "value": "x"}]}, "must end with"),
        ("sharegpt", {"conversations": [{"from": "human", "value": 3}, {"from": "gpt", "value": "y"}]},
         "a string 'value'"),
        ("eval", {"id": "r1", "messages": [USER, ANSWER], "expected": "x"}, "must end with a user or tool"),
        ("eval", {"id": "", "messages": [USER], "expected": "x"}, "id: a non-empty string"),
        ("eval", {"id": "r1", "messages": [USER], "expected": ""}, "expected: a non-empty string"),
    ],
)  # fmt: skip
def test_broken_lines_are_named(fmt: str, line: dict[str, Any], problem: str) -> None:
    found = problems(fmt, line)
    assert any(problem in p for p in found), found


def test_a_line_must_be_an_object() -> None:
    assert problems("trl", ["prompt"]) == ["a line is a JSON object"]
