"""Parse a model's JSON (tolerating a markdown fence) and validate it with jsonschema, draft 2020-12.

``strict`` schemas are checked as OpenAI's strict mode promises them: every object lists all its
properties as required and allows no others (unless the schema says otherwise for ``additionalProperties``).
Compiled validators are cached per schema (by its canonical JSON), so a schema is compiled once.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import jsonschema
import orjson
from jsonschema import Draft202012Validator

_FENCE = re.compile(r"^\s*```[ \t]*(?:json|JSON|jsonc)?[ \t]*\r?\n(.*?)\r?\n?```\s*$", re.DOTALL)
_MAX_ERRORS = 8
_CACHE_SIZE = 256


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason an answer is not acceptable: where (a JSON path, ``$`` the root) and what."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class NotJson(ValueError):
    """The text is not JSON, even without a markdown fence around it."""


def parse_json(text: str) -> Any:
    """The JSON value in ``text``: the whole text, or the inside of a markdown code fence around it."""
    fenced = _FENCE.match(text)
    candidate = fenced.group(1) if fenced else text
    try:
        return orjson.loads(candidate.strip())
    except ValueError as exc:
        raise NotJson(f"not valid JSON: {exc}") from None


def schema_errors(schema: Any) -> str | None:
    """Why ``schema`` is not a valid draft 2020-12 schema, or None."""
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return str(exc.message)
    return None


def strictify(schema: Any) -> Any:
    """A copy of ``schema`` with OpenAI strict-mode rules made explicit on every object with properties."""
    if isinstance(schema, list):
        return [strictify(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: strictify(value) for key, value in schema.items()}
    properties = out.get("properties")
    if isinstance(properties, dict):
        out.setdefault("additionalProperties", False)
        out["required"] = sorted(set(out.get("required") or ()) | set(properties))
    return out


class Checker:
    """Validates values against schemas, compiling each schema once (a bounded cache on the plugin)."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: OrderedDict[bytes, Draft202012Validator] = OrderedDict()

    def validator(self, schema: Any, *, strict: bool) -> Draft202012Validator:
        key = orjson.dumps(schema, option=orjson.OPT_SORT_KEYS) + (b"!" if strict else b"")
        found = self._cache.get(key)
        if found is not None:
            self._cache.move_to_end(key)
            return found
        compiled = Draft202012Validator(strictify(schema) if strict else schema)
        self._cache[key] = compiled
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return compiled

    def problems(self, schema: Any, value: Any, *, strict: bool, where: str = "$") -> list[Problem]:
        """What is wrong with ``value`` for ``schema`` (at most a few, best first); [] when it is valid."""
        errors = sorted(self.validator(schema, strict=strict).iter_errors(value), key=jsonschema.exceptions.relevance)
        return [Problem(_path(where, error.absolute_path), error.message) for error in errors[:_MAX_ERRORS]]

    def text_problems(self, schema: Any | None, text: str | None, *, strict: bool, where: str = "$") -> list[Problem]:
        """Parse ``text`` as JSON and check it (only that it is a JSON object when ``schema`` is None)."""
        if text is None:
            return [Problem(where, "the answer has no text to parse as JSON")]
        try:
            value = parse_json(text)
        except NotJson as exc:
            return [Problem(where, str(exc))]
        if schema is None:
            return [] if isinstance(value, dict) else [Problem(where, "the answer is JSON but not an object")]
        return self.problems(schema, value, strict=strict, where=where)


def _path(where: str, parts: Any) -> str:
    out = where
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out
