"""Virtual keys: issued by Chaperone, kept in the state store as hashes only, checked on the hot path.

A virtual key's secret is ``sk-chp-<id>-<token>``. ``id`` (16 hex digits) names its record and is
not secret; ``token`` is ``secrets.token_urlsafe(32)``. Only the SHA-256 of the whole secret is stored
(the secret has 256 random bits, so a plain hash cannot be brute-forced). Under the store's prefix:

    vkey:<id>         the record (JSON): name, chain, models, metadata, created, expires_at, revoked_at,
                      and each live secret's SHA-256 with its own not_after. Never a secret.
    vkey:index        a set of every id (``Store.set_add``), for listing
    vkey:lock:<id>    held (``Store.add`` with a TTL) while rotate or revoke rewrites a record, so a CLI
                      and two replicas changing one key at once never lose each other's change

Rotation adds a new secret and gives the older ones a not_after of now + overlap: both work until
then. Revocation sets revoked_at; expiry is expires_at. All three are read from the record on every
request against the injected clock, so they take effect as soon as a replica holds the record.

On the hot path a ``KeyRing`` (one per active policy) leaves static keys and open mode to
``Policy.authenticate`` (in memory, no store call) and looks virtual keys up through a small cache:
a record, or its absence, is kept at most ``CACHE_TTL_S`` (0.5 s), so a revoked key is refused on
every replica within a second. Concurrent misses for one id share one store ``get``. Virtual keys
are honoured only by policies with an ``admin`` section (that is where they are managed).
Logs name a key by id and name, never by secret or hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import logging
import re
import secrets
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from proxy.errors import Forbidden, ServiceUnavailable, Unauthorized
from proxy.limits import KeyLimits
from proxy.passthrough import Rules, RuleText
from proxy.policy import Caller, bearer
from proxy.store import Clock, Store, StoreError, StoreUnavailable

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from proxy.policy import Policy

log = logging.getLogger(__name__)

SECRET_PREFIX = "sk-chp-"
CACHE_TTL_S = 0.5
CACHE_MAX_ENTRIES = 10_000
LOCK_TTL_S = 10.0
_LOCK_WAIT_S = 5.0
_ID = re.compile(r"[0-9a-f]{16}")
_INDEX = "vkey:index"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw]?)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

Status = Literal["active", "revoked", "expired"]


class KeyNotFound(LookupError):
    """No virtual key has this id."""


class KeyStateError(ValueError):
    """The key cannot change that way (rotating a revoked or expired key)."""


class KeyBusy(RuntimeError):
    """Another writer held the key's lock for longer than we wait."""


# ---- records ------------------------------------------------------------------------------------------


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SecretHash(_Frozen):
    sha256: str = Field(description="Hex SHA-256 of the secret; the secret itself is never stored.")
    created: float = Field(description="When this secret was issued (epoch seconds).")
    not_after: float | None = Field(default=None, description="Stops working at this time (set by rotation).")

    def live(self, now: float) -> bool:
        return self.not_after is None or now < self.not_after


class KeyRecord(_Frozen):
    id: str = Field(description="Public id, part of the secret; names the record.")
    name: str = Field(description="Who holds the key; shows in logs and metrics.")
    chain: str | None = Field(description="Chain for this key's requests (the policy's default_chain if None).")
    models: tuple[str, ...] | None = Field(description="Models this key may use (all if None).")
    metadata: dict[str, str] = Field(description="Free-form labels: team, user, …")
    passthrough: tuple[str, ...] | None = Field(
        default=None, description="This key's own passthrough rules (the policy's passthrough.allow if None)."
    )
    limits: KeyLimits | None = Field(
        default=None, description="This key's rate limits and budgets (the budget plugin's per_key if None)."
    )
    created: float = Field(description="Issue time (epoch seconds).")
    expires_at: float | None = Field(description="Refused from this time on (never if None).")
    revoked_at: float | None = Field(default=None, description="Refused from this time on, once revoked.")
    secrets: tuple[SecretHash, ...] = Field(description="Every secret that works or worked recently.")

    def status(self, now: float) -> Status:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and now >= self.expires_at:
            return "expired"
        return "active"

    def matching(self, digest: str) -> SecretHash | None:
        """The stored secret with this hex SHA-256, compared in constant time."""
        found = None
        for entry in self.secrets:
            if hmac.compare_digest(entry.sha256, digest):
                found = entry
        return found

    def view(self, now: float) -> dict[str, Any]:
        """What the admin API and CLI show: everything but the hashes."""
        return {
            "id": self.id,
            "object": "chaperone.key",
            "name": self.name,
            "status": self.status(now),
            "chain": self.chain,
            "models": list(self.models) if self.models is not None else None,
            "metadata": dict(self.metadata),
            "passthrough": list(self.passthrough) if self.passthrough is not None else None,
            "limits": self.limits.model_dump(exclude_none=True) if self.limits is not None else None,
            "created": int(self.created),
            "expires_at": _int_or_none(self.expires_at),
            "revoked_at": _int_or_none(self.revoked_at),
            "secrets": [
                {"created": int(s.created), "not_after": _int_or_none(s.not_after)} for s in self.secrets if s.live(now)
            ],
        }


def _int_or_none(value: float | None) -> int | None:
    return None if value is None else int(value)


# ---- what an admin asks for ---------------------------------------------------------------------------


class KeySpec(_Frozen):
    """A request to create a key, from the admin API body or the CLI's options."""

    name: str = Field(min_length=1, max_length=100, description="Who holds the key.")
    chain: str | None = Field(default=None, description="A chain of the active policy (default_chain if unset).")
    models: list[str] | None = Field(
        default=None, min_length=1, description="Models of the active policy it may use (all if unset)."
    )
    metadata: dict[str, str] = Field(default_factory=dict, description="Labels such as team and user (max 20).")
    passthrough: list[RuleText] | None = Field(
        default=None, description="Passthrough rules ('POST /audio/*', 'WS /realtime') replacing the policy's."
    )
    limits: KeyLimits | None = Field(
        default=None, description="Rate limits and budgets (rpm, tpm, tokens_per_day, usd_per_month, …)."
    )
    expires: str | None = Field(default=None, description="'30d', '12h', '15m', '90s', '2w', or an ISO 8601 time.")

    @field_validator("metadata")
    @classmethod
    def _small(cls, value: dict[str, str]) -> dict[str, str]:
        if len(value) > 20 or any(not 0 < len(k) <= 64 or len(v) > 256 for k, v in value.items()):
            raise ValueError("at most 20 entries, names of 1-64 and values of up to 256 characters")
        return value

    def expires_at(self, now: float) -> float | None:
        return None if self.expires is None else parse_expiry(self.expires, now)


def parse_duration(text: str) -> float:
    """Seconds in ``30d``, ``12h``, ``15m``, ``90s``, ``2w`` or a bare number of seconds; ``ValueError`` if not."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 15m, 90s or a number of seconds")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def parse_expiry(text: str, now: float) -> float:
    """A duration from ``now`` (``30d``, ``12h``, ``15m``, ``90s``, ``2w``) or an ISO 8601 time (UTC unless
    it names a zone), as epoch seconds; ``ValueError`` says what is wrong, including a time in the past."""
    text = text.strip()
    if _DURATION.fullmatch(text):
        at = now + parse_duration(text)
    else:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is neither a duration like 30d/12h/15m nor an ISO 8601 time") from None
        at = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
    if at <= now:
        raise ValueError(f"{text!r} is not in the future")
    return at


def grant_problem(policy: Policy, chain: str | None, models: list[str] | None) -> tuple[str, str] | None:
    """``(param, message)`` when the chain or a model is not in ``policy``, else None."""
    if chain is not None and chain not in policy.chains:
        return "chain", f"no chain named {chain!r} in the policy (have: {', '.join(policy.chains)})"
    for model in models or []:
        if model not in policy.routes or model == "*":
            have = ", ".join(name for name in policy.routes if name != "*")
            return "models", f"no model named {model!r} in the policy (have: {have})"
    return None


# ---- the secret ---------------------------------------------------------------------------------------


def new_secret(key_id: str) -> str:
    return f"{SECRET_PREFIX}{key_id}-{secrets.token_urlsafe(32)}"


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_secret(token: str) -> str | None:
    """The id a virtual key's secret names, or None when it is not shaped like one."""
    key_id, dash, rest = token.removeprefix(SECRET_PREFIX).partition("-")
    return key_id if dash and rest and _ID.fullmatch(key_id) else None


# ---- reading and writing records ----------------------------------------------------------------------


class KeyManager:
    """Create, list, rotate and revoke virtual keys in a store; shared by the admin API and the CLI."""

    def __init__(self, store: Store, *, clock: Clock = time.time) -> None:
        self.store = store
        self.clock = clock

    async def get(self, key_id: str) -> KeyRecord | None:
        """The record, or None; ``StoreError`` when the stored record cannot be read."""
        raw = await self.store.get(_record_key(key_id))
        if raw is None:
            return None
        try:
            return KeyRecord.model_validate_json(raw)
        except ValidationError:
            raise StoreError(f"the record of virtual key {key_id} is not readable") from None

    async def require(self, key_id: str) -> KeyRecord:
        record = await self.get(key_id) if _ID.fullmatch(key_id) else None
        if record is None:
            raise KeyNotFound(f"no virtual key with id {key_id!r}")
        return record

    async def list(self) -> list[KeyRecord]:
        ids = sorted(await self.store.set_members(_INDEX))
        records = await asyncio.gather(*(self.get(key_id) for key_id in ids))
        return sorted((r for r in records if r is not None), key=lambda r: (r.created, r.id))

    async def create(self, spec: KeySpec) -> tuple[KeyRecord, str]:
        """Store a new key; returns its record and its secret (shown once, never stored)."""
        now = self.clock()
        expires_at = spec.expires_at(now)
        while True:
            key_id = secrets.token_hex(8)
            secret = new_secret(key_id)
            record = KeyRecord(
                id=key_id,
                name=spec.name,
                chain=spec.chain,
                models=tuple(spec.models) if spec.models is not None else None,
                passthrough=tuple(spec.passthrough) if spec.passthrough is not None else None,
                limits=spec.limits,
                metadata=spec.metadata,
                created=now,
                expires_at=expires_at,
                secrets=(SecretHash(sha256=hash_secret(secret), created=now),),
            )
            if await self.store.add(_record_key(key_id), record.model_dump_json().encode()):
                break  # an id collision (2**-64) just draws again
        await self.store.set_add(_INDEX, key_id)
        log.info("virtual key created: %s (%s)", key_id, spec.name)
        return record, secret

    async def rotate(self, key_id: str, *, overlap_s: float) -> tuple[KeyRecord, str]:
        """Issue a new secret; older ones keep working until now + ``overlap_s``, then stop."""
        if overlap_s < 0:
            raise ValueError("overlap must be 0 or more seconds")
        async with self._locked(key_id):
            record = await self.require(key_id)
            now = self.clock()
            status = record.status(now)
            if status != "active":
                raise KeyStateError(f"virtual key {key_id} is {status}; create a new key instead")
            cutoff = now + overlap_s
            kept = [
                s.model_copy(update={"not_after": cutoff if s.not_after is None else min(s.not_after, cutoff)})
                for s in record.secrets
                if s.live(now)
            ]
            secret = new_secret(key_id)
            updated = record.model_copy(
                update={"secrets": (*kept, SecretHash(sha256=hash_secret(secret), created=now))}
            )
            await self.store.set(_record_key(key_id), updated.model_dump_json().encode())
        log.info("virtual key rotated: %s (%s), old secrets work for %ss more", key_id, record.name, overlap_s)
        return updated, secret

    async def revoke(self, key_id: str) -> KeyRecord:
        """Refuse the key from now on (idempotent); the record stays, for listing and audit."""
        async with self._locked(key_id):
            record = await self.require(key_id)
            if record.revoked_at is not None:
                return record
            updated = record.model_copy(update={"revoked_at": self.clock()})
            await self.store.set(_record_key(key_id), updated.model_dump_json().encode())
        log.info("virtual key revoked: %s (%s)", key_id, record.name)
        return updated

    @asynccontextmanager
    async def _locked(self, key_id: str) -> AsyncIterator[None]:
        lock = f"vkey:lock:{key_id}"
        token = secrets.token_hex(8).encode()
        deadline = time.monotonic() + _LOCK_WAIT_S
        while not await self.store.add(lock, token, ttl_s=LOCK_TTL_S):
            if time.monotonic() > deadline:
                raise KeyBusy(f"virtual key {key_id} is being changed by someone else; try again")
            await asyncio.sleep(0.02)
        try:
            yield
        finally:
            await self.store.delete(lock)


def _record_key(key_id: str) -> str:
    return f"vkey:{key_id}"


# ---- the hot path -------------------------------------------------------------------------------------


class KeyRing:
    """Authenticates requests for one active policy: static keys in memory, virtual keys via a short cache."""

    def __init__(
        self,
        policy: Policy,
        store: Store,
        *,
        clock: Clock = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        ttl_s: float = CACHE_TTL_S,
        max_entries: int = CACHE_MAX_ENTRIES,
    ) -> None:
        self.policy = policy
        self.manager = KeyManager(store, clock=clock)
        self._virtual = policy.admin is not None
        self._clock = clock
        self._monotonic = monotonic
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}
        self._pending: dict[str, asyncio.Task[KeyRecord | None]] = {}

    async def authenticate(self, authorization: str | None) -> Caller:
        """The caller for an ``Authorization`` header; 401 for a missing, unknown, revoked or expired key."""
        if self._virtual:
            token = bearer(authorization)
            if token is not None and token.startswith(SECRET_PREFIX):
                return await self._virtual_caller(token)
        return self.policy.authenticate(authorization)

    def forget(self, key_id: str) -> None:
        """Drop a cached record (after this process changed it), so the change shows at once here."""
        self._cache.pop(key_id, None)

    async def _virtual_caller(self, token: str) -> Caller:
        key_id = parse_secret(token)
        record = await self._record(key_id) if key_id is not None else None
        secret = record.matching(hash_secret(token)) if record is not None else None
        if record is None or secret is None:
            raise Unauthorized("Incorrect API key provided.")
        now = self._clock()
        status = record.status(now)
        if status != "active" or not secret.live(now):
            reason = status if status != "active" else "rotated out"
            log.info("refused virtual key %s (%s): %s", record.id, record.name, reason)
            raise Unauthorized(_REFUSALS[reason])
        chain_name = record.chain or self.policy.default_chain.name
        chain = self.policy.chains.get(chain_name)
        if chain is None:
            raise Forbidden(
                f"key {record.name!r} uses chain {chain_name!r}, which the active policy does not have; "
                "ask an admin to issue a key for an existing chain",
                code="key_chain_missing",
            )
        models = frozenset(record.models) if record.models is not None else None
        rules = None
        if record.passthrough is not None:
            rules = Rules.compile(record.passthrough, f"the passthrough list of virtual key {record.id}")
        return Caller(
            record.name, chain, models,
            key_id=record.id, metadata=record.metadata, passthrough=rules, limits=record.limits,
        )  # fmt: skip

    async def _record(self, key_id: str) -> KeyRecord | None:
        hit = self._cache.get(key_id)
        if hit is not None and self._monotonic() - hit[0] < self._ttl_s:
            return hit[1]
        task = self._pending.get(key_id)
        if task is None:
            task = asyncio.ensure_future(self._fetch(key_id))
            self._pending[key_id] = task
            task.add_done_callback(lambda done: self._settle(key_id, done))
        return await asyncio.shield(task)

    async def _fetch(self, key_id: str) -> KeyRecord | None:
        try:
            record = await self.manager.get(key_id)
        except StoreUnavailable as exc:
            log.error("virtual keys cannot be checked: %s", exc)
            raise ServiceUnavailable("The key store is unavailable; retry shortly.") from None
        except StoreError as exc:
            log.error("virtual key %s cannot be checked: %s", key_id, exc)
            raise ServiceUnavailable("The key store could not be read; retry shortly.") from None
        self._cache.pop(key_id, None)
        self._cache[key_id] = (self._monotonic(), record)
        for stale in _oldest(self._cache, len(self._cache) - self._max_entries):
            del self._cache[stale]
        return record

    def _settle(self, key_id: str, task: asyncio.Task[KeyRecord | None]) -> None:
        self._pending.pop(key_id, None)
        if not task.cancelled():
            task.exception()  # retrieved here, so a failure nobody awaited any more is not reported twice


_REFUSALS = {
    "revoked": "This API key has been revoked.",
    "expired": "This API key has expired.",
    "rotated out": "This API key was rotated and its old secret no longer works; use the new one.",
}


def _oldest(cache: dict[str, Any], count: int) -> list[str]:
    """The first ``count`` keys in insertion order (a copy, safe to delete while iterating)."""
    return list(itertools.islice(cache, max(0, count)))
