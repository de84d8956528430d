"""Virtual keys: records, rotation overlap, revocation, expiry and the hot-path cache, with injected clocks."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from proxy.errors import Forbidden, ServiceUnavailable, Unauthorized
from proxy.keys import (
    SECRET_PREFIX,
    KeyManager,
    KeyNotFound,
    KeyRing,
    KeySpec,
    KeyStateError,
    grant_problem,
    hash_secret,
    parse_duration,
    parse_expiry,
    parse_secret,
)
from proxy.policy import Policy, PolicyError, compile_policy_text
from proxy.registry import PluginRegistry
from proxy.store import Store, StoreConfig, StoreUnavailable, open_store
from tests.proxy.store.test_store import T0, FakeClock

ADMIN = "admin-key-0123456789"
POLICY = f"""
backends: {{up: {{url: "http://127.0.0.1:9/v1"}}}}
models: {{gpt: {{backend: up}}, small: {{backend: up}}}}
chains: {{default: [], strict: [params]}}
keys: [{{name: static-app, key: sk-static}}]
admin: {{key: {ADMIN}}}
"""


class CountingStore:
    """A store that counts ``get`` calls and can be made unreachable."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.gets = 0
        self.down = False

    async def get(self, key: str) -> bytes | None:
        self.gets += 1
        if self.down:
            raise StoreUnavailable("redis at redis://127.0.0.1:1/0 is unavailable")
        return await self.inner.get(key)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def ticks() -> FakeClock:
    """The cache's monotonic clock."""
    return FakeClock(1000.0)


@pytest.fixture(params=["diskcache", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> AsyncIterator[CountingStore]:
    if request.param == "redis":
        config = StoreConfig(backend="redis", url=request.getfixturevalue("redis_url"), prefix=f"t-{uuid.uuid4().hex}:")
    else:
        config = StoreConfig(path=str(tmp_path / "store"))
    opened = open_store(config, tmp_path, clock=clock)
    yield CountingStore(opened)
    await opened.close()


@pytest.fixture
def policy(registry: PluginRegistry) -> Policy:
    return compile_policy_text(POLICY, registry)


@pytest.fixture
def manager(store: CountingStore, clock: FakeClock) -> KeyManager:
    return KeyManager(store, clock=clock)


@pytest.fixture
def ring(policy: Policy, store: CountingStore, clock: FakeClock, ticks: FakeClock) -> KeyRing:
    return KeyRing(policy, store, clock=clock, monotonic=ticks)


def bearer(secret: str) -> str:
    return f"Bearer {secret}"


# ---- parsing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000), ("2w", 1209600), ("45", 45)]
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_expiry(text, T0) == T0 + seconds


def test_expiry_as_iso_time_is_utc_unless_zoned() -> None:
    assert parse_expiry("2028-01-15T00:00:00", T0) == parse_expiry("2028-01-15T00:00:00+00:00", T0)
    assert parse_expiry("2028-01-15T02:00:00+02:00", T0) == parse_expiry("2028-01-15T00:00:00Z", T0)


@pytest.mark.parametrize(
    ("text", "message"),
    [("soon", "neither a duration"), ("2020-01-01", "not in the future"), ("0s", "not in the future")],
)
def test_bad_expiry_says_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_expiry(text, T0)


def test_secret_shape() -> None:
    assert parse_secret("sk-chp-0123456789abcdef-abc-def") == "0123456789abcdef"
    for bad in ("sk-chp-0123456789abcdef", "sk-chp-0123-abc", "sk-chp-0123456789ABCDEF-x", "sk-other"):
        assert parse_secret(bad) is None


def test_grants_must_exist_in_the_policy(policy: Policy) -> None:
    assert grant_problem(policy, "strict", ["gpt"]) is None
    assert grant_problem(policy, "nope", None) == (
        "chain",
        "no chain named 'nope' in the policy (have: default, strict)",
    )
    param, message = grant_problem(policy, None, ["gpt", "gpt-9"]) or ("", "")
    assert param == "models" and "'gpt-9'" in message


@pytest.mark.parametrize(
    ("admin", "message"),
    [
        ("{key: short}", "admin.key: the admin key must have at least 16 characters"),
        ("{key: 'sha256:abc'}", "admin.key: a sha256: key must be followed by 64 hex digits"),
        ("{key: admin-key-0123456789, rotation_overlap_s: -1}", "admin.rotation_overlap_s: "),
        ("{key: admin-key-0123456789, colour: blue}", "admin.colour: Extra inputs are not permitted"),
    ],
)
def test_a_bad_admin_section_names_its_yaml_path(registry: PluginRegistry, admin: str, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        compile_policy_text(POLICY.replace(f"{{key: {ADMIN}}}", admin), registry)
    assert any(error.startswith(message) for error in caught.value.errors), caught.value.errors


def test_the_admin_key_may_be_given_as_its_hash(registry: PluginRegistry) -> None:
    policy = compile_policy_text(POLICY.replace(ADMIN, f"'sha256:{hash_secret(ADMIN)}'"), registry)
    assert policy.admin is not None and policy.admin.accepts(f"Bearer {ADMIN}")
    assert not policy.admin.accepts(f"Bearer {ADMIN}x") and not policy.admin.accepts(None)


def test_an_empty_model_list_is_refused() -> None:
    with pytest.raises(ValueError, match="models"):
        KeySpec(name="x", models=[])


# ---- records -------------------------------------------------------------------------------------------


async def test_create_stores_only_a_hash(manager: KeyManager, store: CountingStore) -> None:
    spec = KeySpec(name="bot", chain="strict", models=["small"], metadata={"team": "t1", "user": "ana"}, expires="30d")
    record, secret = await manager.create(spec)
    assert secret.startswith(f"{SECRET_PREFIX}{record.id}-") and len(secret) > 50
    raw = await store.get(f"vkey:{record.id}")
    assert raw is not None and secret.encode() not in raw and secret.split("-", 3)[3].encode() not in raw
    assert hash_secret(secret).encode() in raw
    view = record.view(T0)
    assert view["status"] == "active" and view["expires_at"] == int(T0) + 30 * 86400
    assert "sha256" not in str(view) and hash_secret(secret) not in str(view)
    assert [r.id for r in await manager.list()] == [record.id]


async def test_list_is_ordered_by_creation(manager: KeyManager, clock: FakeClock) -> None:
    ids = []
    for name in "abc":
        ids.append((await manager.create(KeySpec(name=name)))[0].id)
        clock.advance(1)
    assert [r.id for r in await manager.list()] == ids


async def test_unknown_ids_are_not_found(manager: KeyManager) -> None:
    for bad in ("0123456789abcdef", "../etc", ""):
        with pytest.raises(KeyNotFound):
            await manager.revoke(bad)


async def test_concurrent_rotations_both_land(manager: KeyManager) -> None:
    record, _ = await manager.create(KeySpec(name="bot"))
    results = await asyncio.gather(*(manager.rotate(record.id, overlap_s=60) for _ in range(2)))
    final = await manager.require(record.id)
    assert len(final.secrets) == 3  # the original and both new ones: no rotation was lost
    assert {hash_secret(secret) for _, secret in results} <= {s.sha256 for s in final.secrets}


# ---- authentication ------------------------------------------------------------------------------------


async def test_create_use_revoke(ring: KeyRing, manager: KeyManager, ticks: FakeClock) -> None:
    record, secret = await manager.create(
        KeySpec(name="bot", chain="strict", models=["small"], metadata={"team": "t1"})
    )
    caller = await ring.authenticate(bearer(secret))
    assert (caller.name, caller.chain.name, caller.models, caller.key_id) == (
        "bot",
        "strict",
        frozenset({"small"}),
        record.id,
    )
    assert caller.metadata == {"team": "t1"} and caller.authorization is None
    await manager.revoke(record.id)
    ticks.advance(0.5)  # the cache's whole lifetime: every replica refuses within a second
    with pytest.raises(Unauthorized, match="revoked"):
        await ring.authenticate(bearer(secret))


async def test_this_replica_sees_its_own_revocation_at_once(ring: KeyRing, manager: KeyManager) -> None:
    record, secret = await manager.create(KeySpec(name="bot"))
    await ring.authenticate(bearer(secret))
    await ring.manager.revoke(record.id)
    ring.forget(record.id)
    with pytest.raises(Unauthorized, match="revoked"):
        await ring.authenticate(bearer(secret))


async def test_rotation_overlap(ring: KeyRing, manager: KeyManager, clock: FakeClock) -> None:
    record, old = await manager.create(KeySpec(name="bot"))
    _, new = await manager.rotate(record.id, overlap_s=3600)
    ring.forget(record.id)
    clock.advance(3599)
    assert (await ring.authenticate(bearer(old))).name == "bot"
    assert (await ring.authenticate(bearer(new))).name == "bot"
    clock.advance(1)  # the overlap is over; the cached record says so without a store round trip
    with pytest.raises(Unauthorized, match="rotated"):
        await ring.authenticate(bearer(old))
    assert (await ring.authenticate(bearer(new))).key_id == record.id


async def test_rotation_without_overlap_stops_the_old_secret_now(ring: KeyRing, manager: KeyManager) -> None:
    record, old = await manager.create(KeySpec(name="bot"))
    _, new = await manager.rotate(record.id, overlap_s=0)
    with pytest.raises(Unauthorized, match="rotated"):
        await ring.authenticate(bearer(old))
    assert await ring.authenticate(bearer(new))
    assert len((await manager.rotate(record.id, overlap_s=0))[0].secrets) == 2  # dead secrets are dropped


async def test_expiry(ring: KeyRing, manager: KeyManager, clock: FakeClock) -> None:
    record, secret = await manager.create(KeySpec(name="bot", expires="1h"))
    clock.advance(3599.9)
    assert await ring.authenticate(bearer(secret))
    clock.advance(0.1)
    with pytest.raises(Unauthorized, match="expired"):
        await ring.authenticate(bearer(secret))
    with pytest.raises(KeyStateError, match="expired"):
        await manager.rotate(record.id, overlap_s=60)
    assert (await manager.list())[0].view(clock())["status"] == "expired"


@pytest.mark.parametrize(
    "secret",
    [
        "sk-chp-0123456789abcdef-not-a-key",  # well-formed, no such id
        "sk-chp-garbage",
        "sk-wrong",
    ],
)
async def test_unknown_keys_are_refused_without_detail(ring: KeyRing, secret: str) -> None:
    with pytest.raises(Unauthorized, match=r"^Incorrect API key provided\.$"):
        await ring.authenticate(bearer(secret))


async def test_a_wrong_secret_for_a_real_id_says_nothing_about_the_key(ring: KeyRing, manager: KeyManager) -> None:
    record, _ = await manager.create(KeySpec(name="bot"))
    await manager.revoke(record.id)
    with pytest.raises(Unauthorized, match=r"^Incorrect API key provided\.$"):
        await ring.authenticate(bearer(f"{SECRET_PREFIX}{record.id}-guess"))


async def test_static_keys_cost_no_store_round_trip(ring: KeyRing, store: CountingStore) -> None:
    assert (await ring.authenticate("Bearer sk-static")).name == "static-app"
    for header in (None, "Bearer nope"):
        with pytest.raises(Unauthorized):
            await ring.authenticate(header)
    assert store.gets == 0


async def test_hits_and_misses_are_cached_briefly(
    ring: KeyRing, manager: KeyManager, store: CountingStore, ticks: FakeClock
) -> None:
    _, secret = await manager.create(KeySpec(name="bot"))
    unknown = "sk-chp-0123456789abcdef-x"
    for _ in range(3):
        await ring.authenticate(bearer(secret))
        with pytest.raises(Unauthorized):
            await ring.authenticate(bearer(unknown))
    assert store.gets == 2
    ticks.advance(0.5)
    await ring.authenticate(bearer(secret))
    assert store.gets == 3


async def test_concurrent_misses_share_one_get(ring: KeyRing, manager: KeyManager, store: CountingStore) -> None:
    _, secret = await manager.create(KeySpec(name="bot"))
    callers = await asyncio.gather(*(ring.authenticate(bearer(secret)) for _ in range(20)))
    assert {c.name for c in callers} == {"bot"} and store.gets == 1


async def test_the_cache_is_bounded(
    policy: Policy, manager: KeyManager, store: CountingStore, clock: FakeClock
) -> None:
    small = KeyRing(policy, store, clock=clock, max_entries=2)
    for i in range(5):
        with pytest.raises(Unauthorized):
            await small.authenticate(bearer(f"sk-chp-{i:016x}-x"))
    assert len(small._cache) == 2


async def test_an_unreachable_store_is_503(ring: KeyRing, manager: KeyManager, store: CountingStore) -> None:
    _, secret = await manager.create(KeySpec(name="bot"))
    store.down = True
    with pytest.raises(ServiceUnavailable):
        await ring.authenticate(bearer(secret))
    assert await ring.authenticate("Bearer sk-static")  # static keys do not need the store


async def test_a_chain_the_policy_lost_is_forbidden(
    registry: PluginRegistry, manager: KeyManager, store: CountingStore, clock: FakeClock
) -> None:
    _, secret = await manager.create(KeySpec(name="bot", chain="strict"))
    smaller = compile_policy_text(POLICY.replace(", strict: [params]", ""), registry)
    with pytest.raises(Forbidden) as refused:
        await KeyRing(smaller, store, clock=clock).authenticate(bearer(secret))
    assert refused.value.code == "key_chain_missing" and "'strict'" in refused.value.message


async def test_without_an_admin_section_virtual_keys_are_not_consulted(
    registry: PluginRegistry, manager: KeyManager, store: CountingStore, clock: FakeClock
) -> None:
    _, secret = await manager.create(KeySpec(name="bot"))
    open_policy = compile_policy_text(POLICY.split("keys:")[0], registry)
    caller = await KeyRing(open_policy, store, clock=clock).authenticate(bearer(secret))
    assert caller.name is None and store.gets == 0  # open mode, as before; the store is never read
    admin_only = compile_policy_text(POLICY.replace("keys: [{name: static-app, key: sk-static}]\n", ""), registry)
    assert not admin_only.open
    with pytest.raises(Unauthorized, match="Missing API key"):
        await KeyRing(admin_only, store, clock=clock).authenticate(None)


async def test_no_secret_or_hash_in_the_logs(
    ring: KeyRing, manager: KeyManager, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    record, secret = await manager.create(KeySpec(name="canary-bot"))
    _, rotated = await manager.rotate(record.id, overlap_s=0)
    for attempt in (secret, rotated, rotated + "x"):
        try:
            await ring.authenticate(bearer(attempt))
        except Unauthorized:
            pass
    await manager.revoke(record.id)
    ring.forget(record.id)
    with pytest.raises(Unauthorized):
        await ring.authenticate(bearer(rotated))
    assert record.id in caplog.text and "canary-bot" in caplog.text  # keys are named by id and name
    for material in (secret, rotated, hash_secret(secret), hash_secret(rotated), secret.split("-", 3)[3]):
        assert material not in caplog.text
