"""The eval set: one JSON object a line, ``{"id", "messages", "expected"?, "context"?}``.

Optional extras a scorer may use: ``pattern`` (a regex the answer must match, ``regex`` scorer) and
``schema`` (a JSON schema the answer must satisfy, ``json_schema`` scorer). Anything else on a row is
kept and ignored. Bad lines are errors naming the line, never skipped silently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})


class DataError(ValueError):
    """The eval set cannot be read; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Row:
    """One eval case."""

    id: str
    messages: list[dict[str, Any]]
    expected: str | None = None
    context: str | None = None
    pattern: str | None = None
    schema: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def question(self) -> str:
        """The last user message's text (what a judge is shown as the request)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return content_text(message.get("content"))
        return ""


def content_text(content: Any) -> str:
    """A message content as text: a string, or the ``text`` parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def load_rows(path: Path) -> list[Row]:
    """Every row of ``path``; raises ``DataError`` on the first bad line (blank lines are skipped)."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    rows: list[Row] = []
    seen: set[str] = set()
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        row = parse_row(raw, f"{path}:{number}")
        if row.id in seen:
            raise DataError(f"{path}:{number}: duplicate id {row.id!r} (ids pair rows across runs)")
        seen.add(row.id)
        rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def parse_row(raw: bytes, where: str) -> Row:
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DataError(f"{where}: not JSON: {exc}") from None
    if not isinstance(item, dict):
        raise DataError(f"{where}: expected an object with 'id' and 'messages'")
    ident = item.pop("id", None)
    if isinstance(ident, bool) or not isinstance(ident, str | int):
        raise DataError(f"{where}: 'id' must be a string or an integer")
    messages = item.pop("messages", None)
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: 'messages' must be a non-empty array of chat messages")
    for index, message in enumerate(messages):
        if not isinstance(message, dict) or message.get("role") not in _ROLES:
            raise DataError(f"{where}: messages[{index}] needs a 'role' in {sorted(_ROLES)}")
    texts = {name: item.pop(name, None) for name in ("expected", "context", "pattern")}
    for name, value in texts.items():
        if value is not None and not isinstance(value, str):
            raise DataError(f"{where}: '{name}' must be a string")
    schema = item.pop("schema", None)
    if schema is not None and not isinstance(schema, dict):
        raise DataError(f"{where}: 'schema' must be a JSON schema object")
    return Row(str(ident), messages, texts["expected"], texts["context"], texts["pattern"], schema, item)


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
