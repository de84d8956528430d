"""OpenAI-shaped error bodies for the mock backend, and the one exception handlers raise."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

# status -> (error type, error code), modelled on what api.openai.com returns for each status.
_STATUS_SHAPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "permission_denied"),
    404: ("invalid_request_error", "model_not_found"),
    405: ("invalid_request_error", "method_not_allowed"),
    408: ("timeout_error", "request_timeout"),
    409: ("invalid_request_error", "conflict"),
    413: ("invalid_request_error", "request_too_large"),
    422: ("invalid_request_error", "unprocessable_entity"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    502: ("server_error", "bad_gateway"),
    503: ("server_error", "service_unavailable"),
    504: ("server_error", "gateway_timeout"),
}

_STATUS_MESSAGES: dict[int, str] = {
    401: "Incorrect API key provided (mock).",
    404: "The model does not exist or you do not have access to it (mock).",
    429: "Rate limit reached for requests (mock).",
    500: "The server had an error while processing your request (mock).",
    503: "The engine is currently overloaded, please try again later (mock).",
}


def shape_for_status(status: int) -> tuple[str, str | None]:
    """Return the OpenAI error ``(type, code)`` for an HTTP status."""
    if status in _STATUS_SHAPES:
        return _STATUS_SHAPES[status]
    return ("server_error", None) if status >= 500 else ("invalid_request_error", None)


def error_body(message: str, type_: str, code: str | None = None, param: str | None = None) -> dict[str, Any]:
    """Build the ``{"error": {...}}`` document every error response carries."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class MockError(Exception):
    """An error response: the middleware turns it into OpenAI-shaped JSON with ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str | None = None,
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        default_type, default_code = shape_for_status(status)
        self.status = status
        self.message = message
        self.type = type_ or default_type
        self.code = code if code is not None or type_ is not None else default_code
        self.param = param
        self.headers = headers or {}

    def to_response(self) -> web.Response:
        """Render the error as a JSON response."""
        body = json.dumps(error_body(self.message, self.type, self.code, self.param))
        return web.Response(status=self.status, text=body, content_type="application/json", headers=self.headers)


def invalid_request(message: str, param: str | None = None, code: str | None = None) -> MockError:
    """A 400 ``invalid_request_error``: the caller must fix the request."""
    return MockError(400, message, type_="invalid_request_error", code=code, param=param)


def status_fault(status: int, retry_after: float | None) -> MockError:
    """The error an injected ``status=`` fault produces, with ``Retry-After`` when given."""
    message = _STATUS_MESSAGES.get(status, f"Injected mock error with status {status}.")
    headers = {"Retry-After": _format_seconds(retry_after)} if retry_after is not None else None
    return MockError(status, message, headers=headers)


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else str(seconds)
