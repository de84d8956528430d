"""``POST /v1/embeddings`` and ``POST /v1/moderations``: deterministic vectors and moderation verdicts."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from .calls import int_param, json_response, open_call, read_json, require_model
from .content import count_tokens, text_of
from .errors import invalid_request
from .faults import FaultSpecError, magic_fault
from .vectors import DEFAULT_DIMENSIONS, MAX_DIMENSIONS, embed, input_bytes, to_base64

_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
_FLAGGED_CATEGORY = "violence"


async def embeddings(request: web.Request) -> web.StreamResponse:
    """One unit-norm vector per input, from a hash of the input (default 16 dimensions)."""
    body = await read_json(request)
    model = require_model(body)
    inputs = _inputs(body)
    dimensions = int_param(body, "dimensions", DEFAULT_DIMENSIONS, 1, MAX_DIMENSIONS) or DEFAULT_DIMENSIONS
    encoding = body.get("encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise invalid_request("Invalid 'encoding_format': expected 'float' or 'base64'.", "encoding_format")
    call = open_call(request, body, [i for i in inputs if isinstance(i, str)], "input")
    await call.enter()
    if call.fault.drop_after is not None:
        return call.drop()
    data = []
    for index, item in enumerate(inputs):
        vector = embed(input_bytes(item), dimensions)
        encoded: str | list[float] = to_base64(vector) if encoding == "base64" else vector
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    tokens = sum(count_tokens(i) if isinstance(i, str) else len(i) for i in inputs)
    return json_response(
        {"object": "list", "data": data, "model": model, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
    )


def _inputs(body: dict[str, Any]) -> list[str | list[int]]:
    raw = body.get("input")
    if raw is None:
        raise invalid_request("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    items: list[Any] | None = None
    if isinstance(raw, str):
        items = [raw]
    elif isinstance(raw, list) and raw and all(_is_token(t) for t in raw):
        items = [raw]
    elif isinstance(raw, list) and raw:
        items = raw
    if not items or not all(_valid_input(item) for item in items):
        raise invalid_request("'$.input' is invalid. Please check the API reference.", "input")
    return items


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _valid_input(item: Any) -> bool:
    if isinstance(item, str):
        return item != ""
    return isinstance(item, list) and bool(item) and all(_is_token(t) for t in item)


async def moderations(request: web.Request) -> web.StreamResponse:
    """Flag an input only when it contains ``[[mock:flag]]`` (or the ``flag`` fault comes from config/headers)."""
    body = await read_json(request)
    texts = _moderation_texts(body.get("input"))
    call = open_call(request, body, texts, "input")
    await call.enter()
    if call.fault.drop_after is not None:
        return call.drop()
    model = require_model(body) if "model" in body else "omni-moderation-latest"
    results = [_verdict(call.ambient.flag or _marked(text)) for text in texts]
    return json_response({"id": call.state.new_id("modr-"), "model": model, "results": results})


def _moderation_texts(raw: Any) -> list[str]:
    """A string, a list of strings, or one multi-modal input (a list of content parts)."""
    if raw is None:
        raise invalid_request("Missing required parameter: 'input'.", "input", "missing_required_parameter")
    if isinstance(raw, str):
        return [raw]
    if isinstance(raw, list) and raw and all(isinstance(item, str) for item in raw):
        return raw
    if isinstance(raw, list) and raw and all(isinstance(item, dict) for item in raw):
        return [text_of(raw)]
    raise invalid_request("Invalid 'input': expected a string, an array of strings or content parts.", "input")


def _marked(text: str) -> bool:
    try:
        spec = magic_fault([text])
    except FaultSpecError:
        return False
    return spec is not None and spec.flag


def _verdict(flagged: bool) -> dict[str, Any]:
    categories = {name: flagged and name == _FLAGGED_CATEGORY for name in _CATEGORIES}
    scores = {name: (0.99 if value else 0.0001) for name, value in categories.items()}
    return {
        "flagged": flagged,
        "categories": categories,
        "category_scores": scores,
        "category_applied_input_types": {name: ["text"] for name in _CATEGORIES},
    }
