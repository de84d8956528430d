"""``POST /chaperone/feedback``: attach a user's judgement of an answer to its captured exchange.

    POST /chaperone/feedback
    Authorization: Bearer <the key that made the request, or the admin key>
    {"request_id": "<x-request-id of the answer>", "good"?: bool, "score"?: number,
     "comment"?: str, "correction"?: str}

answers ``{"object": "feedback", "request_id", "stored": true}``. ``correction`` is a better answer (a
demonstration): ``chaperone dataset`` uses it as the SFT target and as the preferred side of a preference
pair. Comment and correction are PII-masked by the capture plugin before they are stored. A later POST for
the same request replaces the earlier feedback. Errors: 400 (bad body), 401 (no or unknown key), 403
``feedback_forbidden`` (another key's request), 404 ``capture_disabled`` (no ``capture`` step in the policy)
or ``request_not_captured`` (unknown id, or a request capture did not sample).

The plugin is found among the active policy's plugin instances by its name and used through the small
``CaptureSink`` protocol, so ``proxy/`` does not import ``plugins/``.
"""

from __future__ import annotations

import math
from typing import Any, Protocol, runtime_checkable

import orjson
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from proxy.errors import Forbidden, InvalidRequest, NotFound
from proxy.protocol import read_body
from proxy.runtime import RUNTIME

_MAX_BODY = 1 << 20
OPEN_KEY = "(open)"


@runtime_checkable
class CaptureSink(Protocol):
    """What the ``capture`` plugin offers this endpoint."""

    name: str

    async def owner_of(self, request_id: str) -> str | None: ...

    async def add_feedback(self, request_id: str, author: str, feedback: dict[str, Any]) -> None: ...


class FeedbackBody(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    request_id: str = Field(min_length=1, max_length=200, description="The x-request-id the client got.")
    good: bool | None = Field(default=None, description="Thumbs up (true) or down (false).")
    score: float | None = Field(default=None, description="A rating on the caller's own scale.")
    comment: str | None = Field(default=None, max_length=10_000, description="Free text about the answer.")
    correction: str | None = Field(default=None, max_length=200_000, description="A better answer (demonstration).")

    @model_validator(mode="after")
    def _something(self) -> FeedbackBody:
        if self.good is None and self.score is None and not self.comment and not self.correction:
            raise ValueError("give at least one of good, score, comment, correction")
        if self.score is not None and not math.isfinite(self.score):
            raise ValueError("score must be a finite number")
        return self


async def _body(request: web.Request) -> FeedbackBody:
    raw = await read_body(request, _MAX_BODY)
    try:
        data = orjson.loads(raw)
    except ValueError:
        raise InvalidRequest("The body must be a JSON object.", code="invalid_json") from None
    if not isinstance(data, dict):
        raise InvalidRequest("The body must be a JSON object.", code="invalid_json")
    try:
        return FeedbackBody.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequest(f"{param or 'body'}: {first['msg']}", param=param, code="invalid_feedback") from None


async def post_feedback(request: web.Request) -> web.Response:
    active = request.app[RUNTIME].in_force()
    authorization = request.headers.get("Authorization")
    admin = active.policy.admin
    is_admin = admin is not None and admin.accepts(authorization)
    caller = None if is_admin else await active.authenticate(authorization)  # 401 for a missing or unknown key
    body = await _body(request)
    sinks = [p for p in active.policy.plugins if getattr(p, "name", None) == "capture" and isinstance(p, CaptureSink)]
    if not sinks:
        raise NotFound("Feedback needs a capture step in the policy.", code="capture_disabled")
    for sink in sinks:
        owner = await sink.owner_of(body.request_id)
        if owner is None:
            continue
        author = "admin" if is_admin else (caller.name if caller is not None and caller.name else OPEN_KEY)
        if not is_admin and owner != author:
            raise Forbidden("This request was made with another key.", param="request_id", code="feedback_forbidden")
        await sink.add_feedback(body.request_id, author, body.model_dump(exclude={"request_id"}))
        return web.json_response({"object": "feedback", "request_id": body.request_id, "stored": True})
    raise NotFound(f"No captured request has the id {body.request_id!r}.", param="request_id",
                   code="request_not_captured")  # fmt: skip


def add_routes(app: web.Application) -> None:
    """Register ``POST /chaperone/feedback``; call before ``proxy.admin.add_routes`` (its catch-all comes last)."""
    app.router.add_post("/chaperone/feedback", post_feedback)
