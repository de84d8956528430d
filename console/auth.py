"""Who is looking at the console: admin key or viewer key, by login cookie or ``Authorization: Bearer``.

A login sets one HTTP-only, SameSite=Strict cookie ``chaperone_console`` = ``role.expiry.nonce.signature``,
signed with HMAC-SHA256 under a key derived from the policy's admin key: no server-side session table
(works with ``--workers N``), and changing the admin key ends every session. Every change (a POST) made
with the cookie must carry the form field ``csrf``, an HMAC of the cookie; a script sending the admin
key as a bearer token needs none (a browser never sends it on its own).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass
from typing import Literal

from proxy.policy import Policy, bearer

COOKIE = "chaperone_console"
Role = Literal["admin", "viewer"]


@dataclass(frozen=True, slots=True)
class Session:
    """A proven visitor: their role, and the CSRF token their forms must carry (None for bearer callers)."""

    role: Role
    csrf: str | None

    @property
    def admin(self) -> bool:
        return self.role == "admin"


def loopback(host: str) -> bool:
    """Whether a listen address only accepts local connections."""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def enabled(policy: Policy, host: str) -> str | None:
    """None when the console is on for this policy and listener, else why it is off."""
    if policy.admin is None:
        return "the policy has no admin section (the console's login is the admin key)"
    setting = policy.console.enabled
    if setting is False:
        return "the policy turns it off (console.enabled: false)"
    if setting is None and not loopback(host):
        return "the proxy listens on a non-loopback address; set console.enabled: true in the policy"
    return None


def _secret(policy: Policy) -> bytes:
    assert policy.admin is not None
    return hmac.new(policy.admin.digest(), b"chaperone console session", hashlib.sha256).digest()


def _sign(policy: Policy, message: str) -> str:
    return hmac.new(_secret(policy), message.encode(), hashlib.sha256).hexdigest()


def role_for_key(policy: Policy, token: str | None) -> Role | None:
    """The role a key grants: ``admin`` for the admin key, ``viewer`` for a viewer key, else None."""
    if not token or policy.admin is None:
        return None
    if policy.admin.accepts(f"Bearer {token}"):
        return "admin"
    return "viewer" if policy.console.viewer(token) else None


def issue(policy: Policy, role: Role, now: float | None = None) -> str:
    """A fresh session cookie value for ``role``."""
    expiry = int((now or time.time()) + policy.console.session_ttl_s)
    message = f"{role}.{expiry}.{secrets.token_hex(8)}"
    return f"{message}.{_sign(policy, message)}"


def csrf_for(policy: Policy, cookie: str) -> str:
    return _sign(policy, "csrf:" + cookie)


def from_cookie(policy: Policy, cookie: str | None, now: float | None = None) -> Session | None:
    """The session a cookie proves, or None (unsigned, expired, or signed under another admin key)."""
    if not cookie or policy.admin is None or cookie.count(".") != 3:
        return None
    message, _, signature = cookie.rpartition(".")
    if not hmac.compare_digest(signature, _sign(policy, message)):
        return None
    role, expiry, _ = message.split(".")
    if role not in ("admin", "viewer") or not expiry.isdigit() or int(expiry) < (now or time.time()):
        return None
    return Session("admin" if role == "admin" else "viewer", csrf_for(policy, cookie))


def from_headers(policy: Policy, authorization: str | None, cookie: str | None) -> Session | None:
    """A bearer key wins over the cookie; None when neither proves anything."""
    token = bearer(authorization)
    if token:
        role = role_for_key(policy, token)
        return Session(role, None) if role is not None else None
    return from_cookie(policy, cookie)


def csrf_ok(session: Session, sent: str | None) -> bool:
    """Whether a change may proceed: bearer callers always, cookie callers with the right token."""
    if session.csrf is None:
        return True
    return bool(sent) and hmac.compare_digest(session.csrf, sent or "")
