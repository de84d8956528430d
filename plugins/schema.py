"""Enforce JSON answers: validate them (jsonschema, draft 2020-12), repair by re-asking, or reject or flag them.

A request is checked when it asks for JSON (``response_format`` / the Responses ``text.format``:
``json_schema`` or ``json_object``), when the policy gives a schema for its model, or when it offers
tools (each call's ``arguments`` against that tool's ``parameters``; ``allowed_tools`` refuses others).
The text may come inside a markdown code fence. On failure the plugin re-asks the upstream with the
validation errors (``wrap_call``, so it composes with retry and fallback), up to ``attempts`` answers in
all; then it returns the valid answer, or a 502 ``schema_violation`` listing the errors, or (``on_failure:
flag``) the last answer with ``x-chaperone-schema: invalid``. The tokens of discarded answers are added to
the request's accounting (``exchange.subcalls``). ``guided`` passes the schema down to backends that
constrain decoding themselves (vLLM ``guided_json`` / ``structured_outputs``). ``mode: audit`` streams live
and checks after the answer went out (verdict in logs and metrics only).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from plugins._schema.answer import Target, asked_format, bad_text, problems, request_tools
from plugins._schema.check import Checker, Problem, schema_errors
from plugins._schema.repair import Saved, account_discarded, add_repair, repair_text
from proxy import (
    ApiRequest,
    ApiResponse,
    CallNext,
    Exchange,
    PluginRegistry,
    ResponseRejected,
    StashKey,
    hookimpl,
    textview,
)
from proxy.answershapes import assemble

log = logging.getLogger(__name__)
TARGET = StashKey[Target]()
CHUNKS = StashKey[list[dict[str, Any]]]()  # audit mode: the stream's chunks, checked once it is over
_HEADER = "x-chaperone-schema"


class SchemaConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    mode: Literal["enforce", "audit"] = Field(
        default="enforce",
        description="enforce: hold the answer (streams too) until it is valid; audit: stream live, check afterwards.",
    )
    schemas: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="JSON schemas by model name ('*': any model), for requests that ask for no format themselves.",
    )
    strict: bool = Field(default=False, description="Check the policy's schemas as OpenAI strict mode does.")
    instruct: bool = Field(
        default=True, description="Tell the model a policy schema in a system instruction (requests asking none)."
    )
    set_format: bool = Field(
        default=True,
        description="Also ask for a policy schema in the request's response_format (chat) or text.format (responses).",
    )
    attempts: int = Field(default=3, ge=1, le=10, description="Answers asked in all: the first and the repairs.")
    on_failure: Literal["error", "flag"] = Field(
        default="error", description="After the last attempt: a 502 schema_violation, or the answer flagged."
    )
    tools: bool = Field(default=True, description="Validate tool-call arguments against the tools' parameters.")
    allowed_tools: frozenset[str] | None = Field(
        default=None, description="Only these tools may be called (others are a violation); unset: any offered tool."
    )
    guided: Literal["off", "guided_json", "structured_outputs"] = Field(
        default="off", description="Pass the schema down for the backend to constrain decoding (vLLM)."
    )
    guided_backends: frozenset[str] = Field(
        default=frozenset(), description="Backends that get the guided schema (empty: every backend)."
    )

    @field_validator("schemas")
    @classmethod
    def _valid_schemas(cls, schemas: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for model, schema in schemas.items():
            if problem := schema_errors(schema):
                raise ValueError(f"schemas[{model!r}] is not a valid JSON schema: {problem}")
        return schemas


class SchemaViolation(ResponseRejected):
    """The answer broke its schema on every attempt; the errors travel in ``error.errors``."""

    code = "schema_violation"

    def __init__(self, message: str, found: list[Problem]) -> None:
        super().__init__(message)
        self.found = found

    def body(self) -> dict[str, Any]:
        out = super().body()
        out["error"]["errors"] = [p.as_dict() for p in self.found]
        return out

    def body_bytes(self) -> bytes:
        return orjson.dumps(self.body())


class Schema:
    name = "schema"
    Config = SchemaConfig
    buffers_response = True

    def __init__(self, config: SchemaConfig) -> None:
        self.config = config
        self.buffers_response = config.mode == "enforce"
        self.checker = Checker()

    @hookimpl
    async def on_request(self, exchange: Exchange) -> None:
        target = self._target(exchange)
        if target is None:
            return
        exchange.stash[TARGET] = target
        if target.schema is not None and self.config.guided != "off":
            backends = self.config.guided_backends
            if not backends or exchange.route.backend in backends:
                body = exchange.request.body
                if self.config.guided == "guided_json":
                    body.setdefault("guided_json", target.schema)
                else:
                    body.setdefault("structured_outputs", {"json": target.schema})

    def _target(self, exchange: Exchange) -> Target | None:
        request = exchange.request
        asked = asked_format(request) if request.endpoint in ("chat", "completions", "responses") else None
        tools = request_tools(request) if self.config.tools or self.config.allowed_tools is not None else {}
        if asked is not None:
            return Target(True, asked[0], asked[1], tools)
        schemas = self.config.schemas
        schema = schemas.get(request.model, schemas.get("*"))
        if schema is not None:
            if self.config.instruct:
                textview.add_instruction(request, _instruction(schema))
            if self.config.set_format:
                _set_format(request, schema, self.config.strict)
            return Target(True, schema, self.config.strict, tools)
        return Target(False, None, False, tools) if tools else None

    @hookimpl
    async def wrap_call(self, exchange: Exchange, call_next: CallNext) -> ApiResponse:
        target = exchange.stash.get(TARGET)
        if target is None or not self.buffers_response:
            return await call_next(exchange)
        saved = Saved.of(exchange.request)
        try:
            return await self._enforce(exchange, call_next, target)
        finally:
            saved.restore(exchange.request)

    async def _enforce(self, exchange: Exchange, call_next: CallNext, target: Target) -> ApiResponse:
        endpoint = exchange.request.endpoint
        attempts = self.config.attempts
        found: list[Problem] = []
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            response = await call_next(exchange)
            if response.stream is not None or response.status != 200:
                return response  # not an answer to check (an error, or a stream a step chose to pass on)
            answer = response.json()
            found = problems(endpoint, answer, target, self.checker, self.config.allowed_tools)
            if not found:
                _mark(exchange, response, "valid" if attempt == 1 else "repaired")
                return response
            log.info("schema: attempt %d of %d invalid (request_id=%s): %s", attempt, attempts,
                     exchange.request_id, found[0].message)  # fmt: skip
            if attempt < attempts:
                account_discarded(exchange, answer, started)
                tools = any(".tool_calls" in p.path or p.path.startswith(("$.output", "$.content")) for p in found)
                repair = repair_text(found, target.schema if target.json else None, tools=tools)
                add_repair(exchange.request, bad_text(endpoint, answer), repair)
        log.warning("schema: invalid after %d attempts (request_id=%s)", attempts, exchange.request_id)
        if self.config.on_failure == "flag":
            _mark(exchange, response, "invalid")
            response.headers[_HEADER + "-errors"] = _header_text(found)
            return response
        exchange.verdicts[self.name] = "rejected"
        first = found[0]
        message = f"The answer does not satisfy its schema after {attempts} attempt(s): {first.path}: {first.message}"
        raise SchemaViolation(message, found)

    @hookimpl
    async def on_response(self, exchange: Exchange) -> None:
        response = exchange.response
        if (
            response is not None
            and response.stream is not None
            and (self.buffers_response or TARGET not in exchange.stash)
        ):
            exchange.skip_stream_hooks(self)

    @hookimpl
    async def on_chunk(self, exchange: Exchange, chunk: dict[str, Any]) -> dict[str, Any]:
        exchange.stash.setdefault(CHUNKS, []).append(chunk)
        return chunk

    @hookimpl
    async def on_complete(self, exchange: Exchange) -> None:
        """Audit mode: check the answer that went out; the verdict goes to the logs and metrics only."""
        target = exchange.stash.get(TARGET)
        if self.buffers_response or target is None or exchange.error is not None or exchange.response is None:
            return
        response = exchange.response
        chunks = exchange.stash.get(CHUNKS)
        answer = assemble(exchange.request.endpoint, chunks) if chunks else None
        if response.stream is None:
            answer = response.json()
        if answer is None:
            return
        found = problems(exchange.request.endpoint, answer, target, self.checker, self.config.allowed_tools)
        exchange.verdicts[self.name] = "audit_invalid" if found else "audit_valid"
        if found:
            log.warning("schema audit: invalid answer (request_id=%s): %s", exchange.request_id, _header_text(found))


def _instruction(schema: dict[str, Any]) -> str:
    return "Answer with only a JSON document, no prose, valid for this JSON schema:\n" + orjson.dumps(schema).decode()


def _set_format(request: ApiRequest, schema: dict[str, Any], strict: bool) -> None:
    spec = {"name": "answer", "schema": schema, "strict": strict}
    if request.endpoint == "chat":
        request.body["response_format"] = {"type": "json_schema", "json_schema": spec}
    elif request.endpoint == "responses":
        text = request.body.get("text")
        request.body["text"] = {**(text if isinstance(text, dict) else {}), "format": {"type": "json_schema", **spec}}


def _mark(exchange: Exchange, response: ApiResponse, verdict: str) -> None:
    response.headers[_HEADER] = verdict
    exchange.verdicts["schema"] = verdict


def _header_text(found: list[Problem]) -> str:
    text = "; ".join(f"{p.path}: {p.message}" for p in found[:3])
    return text.encode("ascii", "replace").decode()[:500].replace("\r", " ").replace("\n", " ")


@hookimpl
def register_plugins(register: PluginRegistry) -> None:
    register(Schema)
