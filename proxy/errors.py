"""Errors that leave the proxy, and how each becomes OpenAI-shaped JSON.

Every error a client can see is a ``ChaperoneError``; its class decides the HTTP status, the
OpenAI ``type`` and the default ``code``, so the openai SDK raises the matching exception::

    ChaperoneError              500 server_error
    ├── ShuttingDown            503                         a stream cut by the end of the shutdown grace period
    ├── ServiceUnavailable      503                         the state store (for example, virtual keys) cannot be read
    ├── RequestRejected         the caller must change something
    │   ├── InvalidRequest      400 invalid_request_error   param names the field
    │   ├── Unauthorized 401 · Forbidden 403 · NotFound/ModelNotFound 404 · PayloadTooLarge 413
    │   ├── MethodNotAllowed 405 · UnsupportedEncoding 415 · HTTPRefusal (its own 4xx: bad HTTP, Expect)
    │   ├── PolicyViolation     400 invalid_request_error   code: prompt_injection_detected, pii_blocked, …
    │   └── BudgetExceeded      429 insufficient_quota      code: budget_exceeded; x-should-retry: false
    └── UpstreamError           502 upstream_error
        ├── UpstreamTimeout 504 · UpstreamUnavailable 503 · UpstreamRateLimited 429 (Retry-After passed on)
        ├── UpstreamStatus      the upstream's own error status and body, passed through
        └── ResponseRejected    502                         code: schema_violation, judge_rejected

A deterministic refusal never looks retryable: 4xx refusals that retrying cannot fix carry
``x-should-retry: false`` (the openai SDK honours it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, ClassVar


class ChaperoneError(Exception):
    """Base of every error the proxy turns into an HTTP answer."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str | None] = "internal_error"
    retryable: ClassVar[bool | None] = None  # None: let the client decide from the status

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance override of the class default
        self.extra_headers: dict[str, str] = dict(headers or {})

    @property
    def http_status(self) -> int:
        return self.status

    def body(self) -> dict[str, Any]:
        """The OpenAI error object: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def body_bytes(self) -> bytes:
        return json.dumps(self.body()).encode()

    def headers(self) -> dict[str, str]:
        headers = dict(self.extra_headers)
        if self.retryable is not None:
            headers["x-should-retry"] = "true" if self.retryable else "false"
        return headers


class RequestRejected(ChaperoneError):
    """The request itself is at fault; sending it again unchanged gives the same answer."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"
    retryable = False


class InvalidRequest(RequestRejected):
    """Malformed JSON, a missing field, a wrong type or range; ``param`` names the field."""


class Unauthorized(RequestRejected):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(RequestRejected):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class NotFound(RequestRejected):
    status = 404
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(RequestRejected):
    status = 409
    code = "conflict"


class MethodNotAllowed(RequestRejected):
    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(RequestRejected):
    status = 413
    code = "payload_too_large"


class UnsupportedEncoding(RequestRejected):
    """The body's ``Content-Encoding`` is not one the proxy decodes; ``Accept-Encoding`` lists those it does."""

    status = 415
    code = "unsupported_content_encoding"

    def __init__(self, encoding: str | None, accepted: str) -> None:
        named = f" ({encoding!r})" if encoding else ""
        super().__init__(
            f"The request body's Content-Encoding{named} is not supported; send it uncompressed or as {accepted}.",
            headers={"Accept-Encoding": accepted},
        )


class HTTPRefusal(RequestRejected):
    """An HTTP-level refusal with a status of its own (a malformed request line, an unknown ``Expect``)."""

    code = "invalid_http_request"

    def __init__(self, status: int, message: str, *, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self._status = status

    @property
    def http_status(self) -> int:
        return self._status


class PolicyViolation(RequestRejected):
    """A plugin refused the request (prompt injection, PII, …); ``code`` says which rule."""

    code = "policy_violation"


class BudgetExceeded(RequestRejected):
    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"


class ShuttingDown(ChaperoneError):
    """The proxy is stopping and its grace period for in-flight requests ran out."""

    status = 503
    code = "shutting_down"


class ServiceUnavailable(ChaperoneError):
    """Something the proxy itself needs (the state store) does not answer; retrying later may work."""

    status = 503
    code = "service_unavailable"


class UpstreamError(ChaperoneError):
    """The backend failed; another attempt (or another backend) may succeed."""

    status = 502
    type = "upstream_error"
    code = "bad_gateway"
    retryable = None


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamUnavailable(UpstreamError):
    status = 503
    code = "upstream_unavailable"


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamStatus(UpstreamError):
    """The upstream answered with an error status; its status and body go to the client unchanged.

    Call hooks (retry, fallback) see it as an exception so they can react to ``status``.
    """

    def __init__(self, status: int, body: bytes, headers: Mapping[str, str] | None = None) -> None:
        self.upstream_status = status
        self.upstream_body = body
        message = _upstream_message(body) or f"upstream answered {status}"
        super().__init__(message, headers=headers)

    @property
    def http_status(self) -> int:
        return self.upstream_status

    def body(self) -> dict[str, Any]:
        try:
            parsed = json.loads(self.upstream_body)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
            return parsed
        return {"error": {"message": self.message, "type": "upstream_error", "param": None, "code": None}}

    def body_bytes(self) -> bytes:
        return json.dumps(self.body()).encode()


class ResponseRejected(UpstreamError):
    """A plugin rejected the upstream's answer (schema violation, judge verdict)."""

    code = "response_rejected"


def _upstream_message(body: bytes) -> str | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        text = body[:200].decode("utf-8", "replace").strip()
        return f"upstream error: {text}" if text else None
    if isinstance(parsed, dict):
        err = parsed.get("error")
        if isinstance(err, dict) and isinstance(err.get("message"), str):
            return str(err["message"])
        if isinstance(err, str):
            return err
    return None
