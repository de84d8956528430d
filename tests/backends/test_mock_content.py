"""Unit tests for the mock backend's deterministic content: pieces, token estimates, schema examples."""

from __future__ import annotations

from typing import Any

import pytest

from backends.mock.content import count_tokens, fit_pieces, reply_text, split_pieces
from backends.mock.schema import example_for


def test_pieces_concatenate_back_and_count_as_tokens() -> None:
    text = "Mock reply to: héllo, wörld!  (ok)"
    pieces = split_pieces(text)
    assert "".join(pieces) == text
    assert len(pieces) == count_tokens(text)


def test_reply_text_strips_markers_and_limits_words() -> None:
    prompt = "one two [[mock:tokens=3]] " + " ".join(str(i) for i in range(40))
    assert reply_text(prompt, "Mock reply to:") == "Mock reply to: one two 0 1 2 3 4 5 6 7 8 9"
    assert reply_text("  ", "Mock reply to:") == "Mock reply to."


def test_fit_pieces_pads_and_cuts() -> None:
    pieces = split_pieces("a b c")
    assert fit_pieces(pieces, 2) == ["a", " b"]
    assert len(fit_pieces(pieces, 50)) == 50
    assert fit_pieces(pieces, None) is pieces


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "mock"),
        ({"type": "string", "format": "date"}, "2024-01-01"),
        ({"type": "string", "minLength": 8, "maxLength": 10}, "mockxxxx"),
        ({"type": "integer", "minimum": 5, "multipleOf": 3}, 6),
        ({"type": "number", "exclusiveMaximum": 0}, -1),
        ({"type": ["null", "boolean"]}, True),
        ({"enum": ["b", "a"]}, "b"),
        ({"const": 7}, 7),
        ({"anyOf": [{"type": "null"}, {"type": "integer"}]}, 1),
        ({"type": "array", "items": {"type": "integer"}, "minItems": 2}, [1, 1]),
        ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "boolean"}]}, ["mock", True]),
        ({"type": "array", "maxItems": 0}, []),
        ({}, "mock"),
    ],
)
def test_example_for_simple_schemas(schema: dict[str, Any], expected: Any) -> None:
    assert example_for(schema) == expected


def test_example_for_objects_refs_and_all_of() -> None:
    schema = {
        "type": "object",
        "properties": {"owner": {"$ref": "#/$defs/Person"}, "note": {"type": "string"}},
        "required": ["owner"],
        "additionalProperties": False,
        "$defs": {
            "Person": {
                "allOf": [
                    {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
                    {"properties": {"age": {"type": "integer"}}, "required": ["age"]},
                ]
            }
        },
    }
    assert example_for(schema) == {"owner": {"name": "mock-name", "age": 1}, "note": "mock-note"}


def test_example_for_recursive_schema_terminates() -> None:
    schema = {
        "$ref": "#/$defs/Node",
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {
                    "value": {"type": "integer"},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/Node"}},
                },
                "required": ["value", "children"],
            }
        },
    }
    value = example_for(schema)
    depth = 0
    while value["children"]:
        value = value["children"][0]
        depth += 1
    assert value["value"] == 1 and depth < 10
