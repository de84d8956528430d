"""Cache keys: which requests may be cached, the exact key, the tenant and the semantic partition.

The exact key is a SHA-256 over the tenant, the endpoint and the request body in canonical form:
keys sorted, text contents stripped (a content list of only text parts counts as its joined string),
parameters equal to the API default dropped (``temperature: 1`` is the same request as none). Every
other field counts, known or not (model, messages, tools, tool_choice, response_format / text.format,
sampling parameters, n, seed, stop, logit_bias, ...), because any of them may change the answer.
Fields that never change the answer are excluded: ``EXCLUDED`` (``stream`` too: a whole answer can be
replayed as a stream and a stream assembled into a whole answer).

The semantic partition is the same digest with the last user turn's text left out and sampling
parameters bucketed (``temperature`` to 0.1, ``max_tokens``-like limits to a power of two): a lookup
only compares the last user turns of requests whose everything-else matches exactly.
"""

from __future__ import annotations

import functools
import hashlib
import math
from dataclasses import dataclass
from typing import Any

import orjson

from proxy.exchange import ApiRequest
from proxy.policy import Caller
from proxy.textview import request_texts

EXCLUDED = frozenset(
    {
        "user", "stream", "stream_options", "metadata", "store", "safety_identifier",
        "prompt_cache_key", "prompt_cache_retention", "service_tier",
    }
)  # fmt: skip
"""Fields that say who asks or how to deliver, never what the answer is."""

DEFAULTS: dict[str, Any] = {
    "temperature": 1,
    "top_p": 1,
    "n": 1,
    "presence_penalty": 0,
    "frequency_penalty": 0,
    "logprobs": False,
}
"""API defaults: sending one is the same request as leaving it out."""

_LIMITS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
_SEMANTIC_ENDPOINTS = frozenset({"chat", "completions", "responses", "messages"})
_QUERY_ROLES = frozenset({"user", "prompt"})


@dataclass(frozen=True, slots=True)
class Keys:
    """Where one request's answer lives: exact key, partition (eviction and semantic index), query text."""

    exact: str
    partition: str
    query: str | None  # the last user turn's text, for a semantic lookup (None: exact only)


def tenant_of(caller: Caller, share: bool) -> str:
    """The partition a caller's answers live in: its key id or name; in open mode a digest of its credential."""
    if share:
        return "*"
    if caller.key_id:
        return "k:" + caller.key_id
    if caller.name:
        return "n:" + caller.name
    return _open_tenant(caller.authorization or "")


@functools.lru_cache(maxsize=4096)
def _open_tenant(credential: str) -> str:
    return "o:" + hashlib.sha256(credential.encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=4096)
def _exact_partition(tenant: str, endpoint: str, model: str) -> str:
    return hashlib.sha256(f"{tenant}\x00{endpoint}\x00{model}".encode()).hexdigest()[:32]


def temperature_of(request: ApiRequest, missing: float) -> float:
    value = request.body.get("temperature")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return missing


def exact_keys(request: ApiRequest, tenant: str) -> Keys:
    """Keys for exact mode: the partition is the tenant and model (used for the entry cap)."""
    body = _canonical(request.body)
    head = f"{tenant}\x00{request.endpoint}\x00".encode()
    exact = hashlib.sha256(head + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return Keys(exact, _exact_partition(tenant, request.endpoint, str(request.body.get("model", ""))), None)


def semantic_keys(request: ApiRequest, tenant: str) -> Keys:
    """Keys for semantic mode: the partition is everything but the last user turn, parameters bucketed."""
    keys = exact_keys(request, tenant)
    if request.endpoint not in _SEMANTIC_ENDPOINTS:
        return keys
    copy = ApiRequest(request.endpoint, request.path, orjson.loads(orjson.dumps(request.body)))
    refs = [r for r in request_texts(copy) if r.role in _QUERY_ROLES and r.kind in ("content", "prompt")]
    if not refs:
        return keys
    last = refs[-1].path[:2]
    parts = [r for r in refs if r.path[:2] == last]
    query = "\n".join(r.text for r in parts).strip()
    for ref in parts:
        ref.set("")
    body = _bucketed(_canonical(copy.body))
    head = f"{tenant}\x00{request.endpoint}\x00semantic\x00".encode()
    partition = hashlib.sha256(head + orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]
    return Keys(keys.exact, partition, query or None)


def _canonical(body: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in body.items():
        if key in EXCLUDED or (key in DEFAULTS and value == DEFAULTS[key] and type(value) is not str):
            continue
        if key == "messages" and isinstance(value, list):
            value = [_message(m) for m in value]
        elif isinstance(value, str) and key in ("prompt", "input", "instructions", "system"):
            value = value.strip()
        out[key] = value
    return out


def _message(message: Any) -> Any:
    if not isinstance(message, dict):
        return message
    given = content = message.get("content")
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text" for p in content):
        content = "".join(str(p.get("text", "")) for p in content)
    if isinstance(content, str):
        stripped = content.strip()
        return message if stripped is given else {**message, "content": stripped}  # unchanged: no copy
    return message


def _bucketed(body: dict[str, Any]) -> dict[str, Any]:
    temperature = body.get("temperature")
    if isinstance(temperature, (int, float)):
        body["temperature"] = round(float(temperature), 1)
    for name in _LIMITS:
        limit = body.get(name)
        if isinstance(limit, int) and limit > 0:
            body[name] = 2 ** math.ceil(math.log2(limit))
    return body
