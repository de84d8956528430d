"""Build a small deterministic JSON value that validates against a JSON schema (tool arguments, json_schema).

Supported: ``type`` (or a list of types), ``enum``, ``const``, ``anyOf``/``oneOf`` (first non-null branch),
``allOf`` (merged), local ``$ref`` (``#/$defs/...``, ``#/definitions/...``), object ``properties``/``required``,
array ``items``/``prefixItems``/``minItems``/``maxItems``, string ``format``/``minLength``/``maxLength``,
numeric ``minimum``/``maximum``/``exclusiveMinimum``/``exclusiveMaximum``/``multipleOf``.
Not supported: ``pattern`` and ``not``. Optional properties are filled near the root and skipped deeper
down, so recursive schemas terminate.
"""

from __future__ import annotations

import math
from typing import Any

_OPTIONAL_DEPTH = 3
_MAX_DEPTH = 12
_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00",
    "duration": "PT1S",
    "email": "mock@example.com",
    "uri": "https://example.com/mock",
    "url": "https://example.com/mock",
    "uuid": "00000000-0000-4000-8000-000000000000",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "hostname": "example.com",
}


def example_for(schema: Any, root: Any = None, *, depth: int = 0, hint: str = "") -> Any:
    """Return a value valid for ``schema``; ``root`` resolves ``$ref``, ``hint`` names the property."""
    root = schema if root is None else root
    if not isinstance(schema, dict):
        return "mock"
    if "$ref" in schema:
        return example_for(_resolve(root, schema["$ref"]), root, depth=depth + 1, hint=hint)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return example_for(_pick_branch(schema[key]), root, depth=depth, hint=hint)
    if isinstance(schema.get("allOf"), list):
        return example_for(_merge_all_of(schema), root, depth=depth, hint=hint)
    kind = _type_of(schema)
    if kind == "object":
        return _object(schema, root, depth, hint)
    if kind == "array":
        return _array(schema, root, depth, hint)
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _string(schema, hint)


def _resolve(root: Any, ref: Any) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#"):
        return {}
    node = root
    for part in ref.lstrip("#").split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        node = node.get(part) if isinstance(node, dict) else None
    return node if node is not None else {}


def _pick_branch(branches: list[Any]) -> Any:
    for branch in branches:
        if not (isinstance(branch, dict) and branch.get("type") == "null"):
            return branch
    return branches[0]


def _merge_all_of(schema: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    properties: dict[str, Any] = dict(merged.get("properties", {}))
    required: list[Any] = list(merged.get("required", []))
    for part in schema["allOf"]:
        if not isinstance(part, dict):
            continue
        properties.update(part.get("properties", {}))
        required.extend(part.get("required", []))
        merged.update({k: v for k, v in part.items() if k not in ("properties", "required")})
    if properties:
        merged["properties"] = properties
        merged.setdefault("type", "object")
    if required:
        merged["required"] = required
    return merged


def _type_of(schema: dict[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        non_null = [k for k in kind if k != "null"]
        kind = non_null[0] if non_null else "null"
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _object(schema: dict[str, Any], root: Any, depth: int, hint: str) -> dict[str, Any]:
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        properties = {}
    required = [r for r in schema.get("required", []) if isinstance(r, str)]
    names = list(properties) if depth < _OPTIONAL_DEPTH else [n for n in properties if n in required]
    names += [n for n in required if n not in names]
    if depth >= _MAX_DEPTH:
        return {}
    return {name: example_for(properties.get(name, {}), root, depth=depth + 1, hint=name) for name in names}


def _array(schema: dict[str, Any], root: Any, depth: int, hint: str) -> list[Any]:
    prefix = schema.get("prefixItems")
    if not isinstance(prefix, list):
        prefix = []
    items = schema.get("items", {})
    minimum = schema.get("minItems")
    count = max(minimum if isinstance(minimum, int) else 0, len(prefix), 0 if depth >= _OPTIONAL_DEPTH else 1)
    if isinstance(schema.get("maxItems"), int):
        count = min(count, schema["maxItems"])
    if depth >= _MAX_DEPTH:
        return []
    values = []
    for index in range(count):
        item_schema = prefix[index] if index < len(prefix) else items
        item_hint = f"{hint}{index + 1}" if schema.get("uniqueItems") and index else hint
        values.append(example_for(item_schema, root, depth=depth + 1, hint=item_hint))
    return values


def _number(schema: dict[str, Any], *, integer: bool) -> int | float:
    value: float = 1
    if isinstance(schema.get("minimum"), int | float):
        value = max(value, schema["minimum"])
    if isinstance(schema.get("exclusiveMinimum"), int | float) and value <= schema["exclusiveMinimum"]:
        value = schema["exclusiveMinimum"] + 1
    if isinstance(schema.get("maximum"), int | float):
        value = min(value, schema["maximum"])
    if isinstance(schema.get("exclusiveMaximum"), int | float) and value >= schema["exclusiveMaximum"]:
        value = schema["exclusiveMaximum"] - 1
    step = schema.get("multipleOf")
    if isinstance(step, int | float) and step > 0:
        value = math.ceil(value / step) * step
    if integer:
        return math.ceil(value)
    return int(value) if float(value).is_integer() else value


def _string(schema: dict[str, Any], hint: str) -> str:
    text = _FORMATS.get(str(schema.get("format")), f"mock-{hint}" if hint else "mock")
    min_length = schema.get("minLength")
    if isinstance(min_length, int) and len(text) < min_length:
        text += "x" * (min_length - len(text))
    max_length = schema.get("maxLength")
    if isinstance(max_length, int):
        text = text[:max_length]
    return text
