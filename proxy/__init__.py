"""Chaperone's plugin-facing API: what a plugin imports to take part in the chain."""

from proxy.errors import (
    BudgetExceeded,
    ChaperoneError,
    Forbidden,
    InvalidRequest,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    PolicyViolation,
    RequestRejected,
    ResponseRejected,
    Unauthorized,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamStatus,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from proxy.exchange import ApiRequest, ApiResponse, Attempt, Exchange, Stash, StashKey, Usage
from proxy.hookspecs import CallNext, hookimpl, hookspec
from proxy.registry import PluginRegistry

__all__ = [
    "ApiRequest",
    "ApiResponse",
    "Attempt",
    "BudgetExceeded",
    "CallNext",
    "ChaperoneError",
    "Exchange",
    "Forbidden",
    "InvalidRequest",
    "ModelNotFound",
    "NotFound",
    "PayloadTooLarge",
    "PluginRegistry",
    "PolicyViolation",
    "RequestRejected",
    "ResponseRejected",
    "Stash",
    "StashKey",
    "Unauthorized",
    "UpstreamError",
    "UpstreamRateLimited",
    "UpstreamStatus",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "Usage",
    "hookimpl",
    "hookspec",
]
