"""The judge's prompt: the default template, filling it from the request and answer, and the verdict schema."""

from __future__ import annotations

from string import Template
from typing import Any

from proxy import ApiRequest, textview

DEFAULT_PROMPT = """You review an AI assistant's answer before the user sees it.

Question from the user:
$question

Context the answer must be grounded in (may be empty):
$context

Policy the answer must respect (may be empty):
$policy

The assistant's answer:
$answer

Check: is every claim of the answer supported by the context (when there is context)? Does it answer the
question? Does it violate the policy? Reply with only a JSON object:
{"pass": true or false, "score": a number from 0 to 1, "reasons": ["short reason", ...]}"""

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "pass": {"type": "boolean"},
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reasons": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["pass", "score", "reasons"],
    "additionalProperties": False,
}


def question_and_context(request: ApiRequest, context_roles: frozenset[str]) -> tuple[str, str]:
    """The last user text, and the texts of the request's context roles (system, tool results …)."""
    question = ""
    context: list[str] = []
    for ref in textview.request_texts(request):
        if ref.kind not in ("content", "prompt", "input"):
            continue
        if ref.role in ("user", "prompt", "input"):
            question = ref.text
        elif ref.role in context_roles:
            context.append(ref.text)
    return question, "\n\n".join(context)


def fill(template: str, *, question: str, context: str, answer: str, policy: str, limit: int) -> str:
    """The template with ``$question``, ``$context``, ``$answer`` and ``$policy`` filled in (each cut to ``limit``)."""
    values = {"question": question[:limit], "context": context[:limit], "answer": answer[:limit], "policy": policy}
    return Template(template).safe_substitute(values)


def judge_body(prompt: str, json_mode: str, max_tokens: int) -> dict[str, Any]:
    """The chat request for the judge route (``model`` is added by the sub-call)."""
    body: dict[str, Any] = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens}
    body["temperature"] = 0
    if json_mode == "schema":
        spec = {"name": "verdict", "schema": VERDICT_SCHEMA, "strict": True}
        body["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif json_mode == "object":
        body["response_format"] = {"type": "json_object"}
    return body
