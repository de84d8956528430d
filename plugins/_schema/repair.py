"""The repair turn: tell the model what was wrong with its answer and ask again, in the endpoint's own shape.

``add_repair`` appends the model's bad answer and a user message listing the validation errors (and
the schema, when there is one) to the request; ``Saved`` puts the request's conversation back afterwards,
so the repair turns are never seen outside the plugin's ``wrap_call``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import orjson

from plugins._schema.check import Problem
from proxy import ApiRequest, Exchange, Usage
from proxy.subcall import SubcallRecord

_FIELD = {"chat": "messages", "messages": "messages", "responses": "input", "completions": "prompt"}
_SCHEMA_CHARS = 4000


@dataclass(slots=True)
class Saved:
    """The request's conversation field as the client sent it."""

    name: str
    value: Any

    @classmethod
    def of(cls, request: ApiRequest) -> Saved:
        name = _FIELD.get(request.endpoint, "messages")
        return cls(name, copy.copy(request.body.get(name)))

    def restore(self, request: ApiRequest) -> None:
        request.body[self.name] = self.value


def repair_text(found: list[Problem], schema: Any | None, *, tools: bool) -> str:
    lines = [f"- {p.path}: {p.message}" for p in found]
    text = "Your previous answer was rejected by a validator:\n" + "\n".join(lines) + "\n"
    if tools:
        text += "Call the tool again with arguments that satisfy its parameters schema.\n"
    if schema is not None:
        shown = orjson.dumps(schema).decode()
        text += "Answer again with only a JSON document, no prose and no code fence, valid for this JSON schema:\n"
        text += shown[:_SCHEMA_CHARS] + "\n"
    elif not tools:
        text += "Answer again with only a JSON object, no prose and no code fence.\n"
    return text


def add_repair(request: ApiRequest, bad: str, repair: str) -> None:
    """Append the model's answer ``bad`` and the ``repair`` request to the conversation being sent upstream."""
    body = request.body
    if request.endpoint == "completions":
        prompt = body.get("prompt")
        body["prompt"] = f"{prompt if isinstance(prompt, str) else ''}{bad}\n\n{repair}\nAnswer:"
        return
    name = _FIELD.get(request.endpoint, "messages")
    turns = body.get(name)
    if isinstance(turns, str):  # a Responses ``input`` given as one string
        turns = [{"role": "user", "content": turns}]
    turns = list(turns) if isinstance(turns, list) else []
    if bad:
        turns.append({"role": "assistant", "content": bad})
    turns.append({"role": "user", "content": repair})
    body[name] = turns


def account_discarded(exchange: Exchange, answer: dict[str, Any], started: float) -> None:
    """A discarded answer's tokens still count: recorded like a sub-call, so cost and budget add them."""
    usage = Usage.from_openai(answer.get("usage"))
    if usage is not None:
        record = SubcallRecord(exchange.request.model, exchange.route.backend, usage, started, time.monotonic())
        exchange.subcalls.append(record)
