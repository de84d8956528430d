"""The text the model sees: where model-visible text lives in each endpoint's request and answer.

Guards, token counting and caching need "every text the model will read" and "every text it wrote",
whatever the endpoint. This module is the one place that knows the JSON shapes; plugins read and
replace texts through ``TextRef`` objects and never walk endpoint JSON themselves. A new endpoint
(the Responses API, Anthropic Messages) extends this module, and every plugin follows.

Requests (``request_texts``):
  chat         ``messages[i].content`` (a string, or ``text`` / ``refusal`` parts of a list),
               ``messages[i].name``, assistant ``tool_calls[j].function.arguments`` and the legacy
               ``function_call.arguments``; ``tools[k].function.description`` and the descriptions
               inside its ``parameters`` schema (the model reads those too).
  completions  ``prompt`` as a string or a list of strings (token-id lists are not text).
  embeddings   ``input`` as a string or a list of strings (token-id lists are not text).

Answers (``response_texts``) and stream deltas (``chunk_texts``):
  chat         ``choices[i].message`` / ``choices[i].delta``: ``content``, ``refusal``,
               ``tool_calls[j].function.arguments``, ``function_call.arguments``; every choice (``n>1``).
  completions  ``choices[i].text``.

Each ``TextRef`` of an answer carries a ``stream_key`` ``(choice index, kind, tool-call index)`` that
names one growing text across the chunks of a stream, so a plugin can keep state per text.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from proxy.exchange import ApiRequest

__all__ = ["TRUST_OF_ROLE", "StreamKey", "TextRef", "chunk_texts", "request_texts", "response_texts"]

Path = tuple[str | int, ...]
StreamKey = tuple[int, str, int | None]

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


def _ref(
    container: Any, key: str | int, role: str, kind: str, trust: str, path: Path, *, json: bool = False,
    stream_key: StreamKey | None = None,
) -> TextRef | None:  # fmt: skip
    value = container.get(key) if isinstance(container, dict) else None
    if not isinstance(value, str):
        return None
    return TextRef(value, role, kind, trust, path, json, container, key, stream_key)


def request_texts(request: ApiRequest) -> list[TextRef]:
    """Every text the model will read in ``request`` (chat, completions or embeddings), in body order."""
    body = request.body
    if request.endpoint == "chat":
        return list(_chat_request(body))
    if request.endpoint == "completions":
        return list(_string_or_list(body, "prompt", "prompt"))
    if request.endpoint == "embeddings":
        return list(_string_or_list(body, "input", "input"))
    return []


def _string_or_list(body: dict[str, Any], field: str, kind: str) -> Iterator[TextRef]:
    value = body.get(field)
    if isinstance(value, str):
        yield TextRef(value, kind, kind, "user", (field,), False, body, field)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                yield TextRef(item, kind, kind, "user", (field, i), False, value, i)


def _chat_request(body: dict[str, Any]) -> Iterator[TextRef]:
    messages = body.get("messages")
    if isinstance(messages, list):
        for i, message in enumerate(messages):
            if isinstance(message, dict):
                yield from _message(message, ("messages", i))
    tools = body.get("tools")
    if isinstance(tools, list):
        for k, tool in enumerate(tools):
            function = tool.get("function") if isinstance(tool, dict) else None
            if isinstance(function, dict):
                yield from _tool_definition(function, ("tools", k, "function"))


def _message(message: dict[str, Any], path: Path) -> Iterator[TextRef]:
    role = message.get("role")
    role = role if isinstance(role, str) else "user"
    trust = TRUST_OF_ROLE.get(role, "user")
    kind = "content"
    content = message.get("content")
    if isinstance(content, str):
        yield TextRef(content, role, kind, trust, (*path, "content"), False, message, "content")
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                continue
            part_type = part.get("type")
            if part_type == "text" and (ref := _ref(part, "text", role, kind, trust, (*path, "content", j, "text"))):
                yield ref
            elif part_type == "refusal" and (
                ref := _ref(part, "refusal", role, "refusal", trust, (*path, "content", j, "refusal"))
            ):
                yield ref
    if "name" in message and (ref := _ref(message, "name", role, "name", trust, (*path, "name"))):
        yield ref
    if "refusal" in message and (ref := _ref(message, "refusal", role, "refusal", trust, (*path, "refusal"))):
        yield ref
    yield from _tool_arguments(message, role, trust, path, None)


def _tool_arguments(
    holder: dict[str, Any], role: str, trust: str, path: Path, choice: int | None
) -> Iterator[TextRef]:
    calls = holder.get("tool_calls")
    if isinstance(calls, list):
        for j, call in enumerate(calls):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and "arguments" in function:
                index = call.get("index", j)
                key: StreamKey | None = None
                if choice is not None:
                    key = (choice, "tool_arguments", index if isinstance(index, int) else j)
                where = (*path, "tool_calls", j, "function", "arguments")
                ref = _ref(function, "arguments", role, "tool_arguments", trust, where, json=True, stream_key=key)
                if ref:
                    yield ref
    legacy = holder.get("function_call")
    if isinstance(legacy, dict) and "arguments" in legacy:
        key = None if choice is None else (choice, "function_arguments", None)
        ref = _ref(
            legacy, "arguments", role, "tool_arguments", trust, (*path, "function_call", "arguments"),
            json=True, stream_key=key,
        )  # fmt: skip
        if ref:
            yield ref


def _tool_definition(function: dict[str, Any], path: Path) -> Iterator[TextRef]:
    if "description" in function and (
        ref := _ref(function, "description", "tools", "tool_definition", "system", (*path, "description"))
    ):
        yield ref
    parameters = function.get("parameters")
    if isinstance(parameters, dict):
        yield from _schema_descriptions(parameters, (*path, "parameters"), 0)


def _schema_descriptions(schema: dict[str, Any], path: Path, depth: int) -> Iterator[TextRef]:
    if depth > 16:  # schemas nest; a hostile one should not recurse without end
        return
    if "description" in schema and (
        ref := _ref(schema, "description", "tools", "tool_definition", "system", (*path, "description"))
    ):
        yield ref
    for key, value in schema.items():
        if isinstance(value, dict):
            if key in ("properties", "$defs", "definitions"):
                for name, sub in value.items():
                    if isinstance(sub, dict):
                        yield from _schema_descriptions(sub, (*path, key, name), depth + 1)
            elif key in ("items", "additionalProperties", "not"):
                yield from _schema_descriptions(value, (*path, key), depth + 1)
        elif isinstance(value, list) and key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for i, sub in enumerate(value):
                if isinstance(sub, dict):
                    yield from _schema_descriptions(sub, (*path, key, i), depth + 1)


# ---- answers --------------------------------------------------------------------------------


def response_texts(endpoint: str, body: dict[str, Any]) -> list[TextRef]:
    """Every text the model wrote in a whole answer (all choices)."""
    return list(_choices(endpoint, body, "message"))


def chunk_texts(endpoint: str, chunk: dict[str, Any]) -> list[TextRef]:
    """Every text piece in one parsed stream chunk; ``stream_key`` names the growing text it extends."""
    return list(_choices(endpoint, chunk, "delta"))


def _choices(endpoint: str, body: dict[str, Any], holder_key: str) -> Iterator[TextRef]:
    choices = body.get("choices")
    if not isinstance(choices, list):
        return
    for position, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        index = choice.get("index", position)
        index = index if isinstance(index, int) else position
        if endpoint == "completions":
            if ref := _ref(choice, "text", "assistant", "content", "model", ("choices", position, "text"),
                           stream_key=(index, "content", None)):  # fmt: skip
                yield ref
            continue
        holder = choice.get(holder_key)
        if not isinstance(holder, dict):
            continue
        path: Path = ("choices", position, holder_key)
        for kind in ("content", "refusal"):
            if kind in holder and (
                ref := _ref(holder, kind, "assistant", kind, "model", (*path, kind), stream_key=(index, kind, None))
            ):
                yield ref
        yield from _tool_arguments(holder, "assistant", "model", path, index)
