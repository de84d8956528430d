"""The text view's shared pieces: ``TextRef``, trust levels, and walking a JSON schema's descriptions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

Path = tuple[str | int, ...]
StreamKey = tuple[int, str, int | None]
"""Names one growing text of a stream: (choice / output item / content block index, kind, sub-index)."""

TRUST_OF_ROLE = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "model",
    "tool": "untrusted",
    "function": "untrusted",
}
"""How far a message's author is trusted: operator text, the user, earlier model turns, or untrusted
content (tool and function results: web pages, files, API answers the app fetched)."""


@dataclass(slots=True)
class TextRef:
    """One model-visible text, where it lives, who wrote it, and how to replace it.

    ``role`` is the message role (``system``, ``user``, ``assistant``, ``tool`` …), or ``prompt``
    (completions), ``input`` (embeddings), ``tools`` (tool definitions). ``kind`` says what the text is:
    ``content``, ``refusal``, ``name``, ``tool_arguments``, ``tool_definition``, ``prompt``, ``input``.
    ``trust`` is ``system``, ``user``, ``untrusted`` or ``model`` (see ``TRUST_OF_ROLE``). ``json`` is
    True when the text is JSON (tool-call arguments): a replacement inside one of its strings must be
    JSON-escaped. ``path`` is the JSON path in the body, for reports.
    """

    text: str
    role: str
    kind: str
    trust: str
    path: Path
    json: bool
    container: Any
    key: str | int
    stream_key: StreamKey | None = None

    def set(self, new: str) -> None:
        """Write ``new`` back where the text came from (the request or answer body is edited in place)."""
        self.container[self.key] = new
        self.text = new


def ref_at(
    container: Any, key: str | int, role: str, kind: str, trust: str, path: Path, *, json: bool = False,
    stream_key: StreamKey | None = None,
) -> TextRef | None:  # fmt: skip
    value = container.get(key) if isinstance(container, dict) else None
    if not isinstance(value, str):
        return None
    return TextRef(value, role, kind, trust, path, json, container, key, stream_key)


def tool_definition(function: dict[str, Any], path: Path) -> Iterator[TextRef]:
    if "description" in function and (
        ref := ref_at(function, "description", "tools", "tool_definition", "system", (*path, "description"))
    ):
        yield ref
    parameters = function.get("parameters")
    if isinstance(parameters, dict):
        yield from schema_descriptions(parameters, (*path, "parameters"), 0)


def schema_descriptions(schema: dict[str, Any], path: Path, depth: int) -> Iterator[TextRef]:
    if depth > 16:  # schemas nest; a hostile one should not recurse without end
        return
    if "description" in schema and (
        ref := ref_at(schema, "description", "tools", "tool_definition", "system", (*path, "description"))
    ):
        yield ref
    for key, value in schema.items():
        if isinstance(value, dict):
            if key in ("properties", "$defs", "definitions"):
                for name, sub in value.items():
                    if isinstance(sub, dict):
                        yield from schema_descriptions(sub, (*path, key, name), depth + 1)
            elif key in ("items", "additionalProperties", "not"):
                yield from schema_descriptions(value, (*path, key), depth + 1)
        elif isinstance(value, list) and key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for i, sub in enumerate(value):
                if isinstance(sub, dict):
                    yield from schema_descriptions(sub, (*path, key, i), depth + 1)


def string_leaves(value: Any, role: str, kind: str, trust: str, path: Path, depth: int = 0) -> Iterator[TextRef]:
    """Every string inside a decoded JSON value (an Anthropic ``tool_use.input`` object), each a TextRef."""
    if depth > 32:
        return
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(item, str):
            yield TextRef(item, role, kind, trust, (*path, key), False, value, key)
        elif isinstance(item, dict | list):
            yield from string_leaves(item, role, kind, trust, (*path, key), depth + 1)
