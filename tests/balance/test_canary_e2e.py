"""Canary / A-B splits and spread routes over real sockets: sticky, visible, and rolled back by an edit."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from backends.canary import Split, from_spec
from backends.mock import MockConfig
from tests.balance.conftest import Replicas, chat_count
from tests.conftest import ProxyFactory, RunningProxy

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def split_policy(a: str, b: str, canary_weight: float = 5, sticky: str = "user", extra: str = "") -> str:
    return textwrap.dedent(f"""
    backends:
      a: {{url: "{a}"}}
      b: {{url: "{b}"}}
    models:
      gpt:
        backend: a
        model: v1
        sticky: {sticky}
        split:
          - {{weight: {100 - canary_weight}}}
          - {{backend: b, model: v2, weight: {canary_weight}, name: canary}}
    chains:
      default: []
    """) + textwrap.dedent(extra)


async def variants(client: openai.AsyncOpenAI, users: list[str]) -> dict[str, str]:
    """User → the variant its request went to (from the response header)."""

    async def one(user: str) -> tuple[str, str]:
        raw = await client.chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES, user=user)
        assert raw.parse().choices[0].message.content
        return user, raw.headers["x-chaperone-variant"]

    return dict(await asyncio.gather(*(one(user) for user in users)))


def split_of(proxy: RunningProxy) -> Split:
    spec = proxy.runtime.acquire_policy().routes["gpt"].split
    assert spec is not None
    return from_spec(spec)  # a fresh picker: the point of a user is the same in every one


USERS = [f"user-{i}" for i in range(80)]


async def test_users_stay_on_their_variant_across_requests_and_restarts(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    a, b = await replicas(MockConfig(), MockConfig())
    path = write_policy(split_policy(a.url, b.url))
    proxy = await start_proxy(path)
    async with proxy.client() as client:
        first = await variants(client, USERS)
        again = await variants(client, USERS[:30])
    assert again == {user: first[user] for user in USERS[:30]}
    canary = sorted(user for user, variant in first.items() if variant == "canary")
    split = split_of(proxy)
    assert canary == sorted(u for u in USERS if split.point(f"user:{u}") >= 0.95)  # the hash decides, nothing else
    assert 1 <= len(canary) <= 10  # about 5 % of 80
    # What each upstream was asked for: the canary's own backend and model, nothing else.
    sent_b = [r["body"] for r in await b.requests() if r["path"] == "/v1/chat/completions"]
    assert sorted({body["user"] for body in sent_b}) == canary
    assert {body["model"] for body in sent_b} == {"v2"}
    sent_a = [r["body"] for r in await a.requests() if r["path"] == "/v1/chat/completions"]
    assert {body["model"] for body in sent_a} == {"v1"}
    async with proxy.client() as client:  # a stream says its variant too
        canary_user = canary[0]
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt", messages=MESSAGES, user=canary_user, stream=True
        )
        assert raw.headers["x-chaperone-variant"] == "canary"
        assert [chunk async for chunk in raw.parse()]
    restarted = await start_proxy(path)  # another replica of the proxy, or the same after a restart
    async with restarted.client() as client:
        assert await variants(client, USERS[:40]) == {user: first[user] for user in USERS[:40]}


async def test_ramp_up_keeps_canary_users_and_rollback_is_an_edit(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    a, b = await replicas(MockConfig(), MockConfig())
    proxy = await start_proxy(write_policy(split_policy(a.url, b.url, canary_weight=5)))
    users = USERS[:40]
    async with proxy.client() as client:
        at5 = {u for u, v in (await variants(client, users)).items() if v == "canary"}
        write_policy(split_policy(a.url, b.url, canary_weight=50))
        assert await proxy.runtime.reload()
        at50 = {u for u, v in (await variants(client, users)).items() if v == "canary"}
        assert at5 < at50  # raising the weight only moves users onto the canary
        write_policy(split_policy(a.url, b.url, canary_weight=0))  # roll back
        assert await proxy.runtime.reload()
        before = await chat_count(b)
        assert set((await variants(client, users)).values()) == {"v1"}
    assert await chat_count(b) == before


async def test_sticky_by_key_ignores_the_user_field(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    a, b = await replicas(MockConfig(), MockConfig())
    keys = "keys:\n" + "".join(f"  - {{name: app{i}, key: sk-app-key-{i:04d}}}\n" for i in range(12))
    proxy = await start_proxy(write_policy(split_policy(a.url, b.url, canary_weight=50, sticky="key", extra=keys)))
    seen: dict[int, set[str]] = {}
    for i in range(12):
        async with proxy.client(f"sk-app-key-{i:04d}") as client:
            seen[i] = set((await variants(client, ["u1", "u2"])).values())
    assert all(len(v) == 1 for v in seen.values())  # one variant per key, whatever the user
    assert {next(iter(v)) for v in seen.values()} == {"v1", "canary"}


async def test_errors_and_logs_name_the_variant(
    replicas: Replicas,
    start_proxy: ProxyFactory,
    write_policy: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    log_path = tmp_path / "access.log"
    monkeypatch.setenv("CHAPERONE_ACCESS_LOG", str(log_path))
    a, b = await replicas(MockConfig(), MockConfig(fault="status=500"))
    proxy = await start_proxy(write_policy(split_policy(a.url, b.url, canary_weight=100)))
    async with proxy.client() as client:
        with pytest.raises(openai.InternalServerError) as info:
            await client.chat.completions.create(model="gpt", messages=MESSAGES, user="x")
    assert info.value.response.headers["x-chaperone-variant"] == "canary"
    lines: list[dict[str, Any]] = []
    for _ in range(250):
        if log_path.exists() and log_path.read_text().strip():
            lines = [json.loads(line) for line in log_path.read_text().splitlines()]
            break
        await asyncio.sleep(0.02)
    assert lines and lines[-1]["verdicts"]["variant"] == "canary" and lines[-1]["backend"] == "b"


def spread_policy(a: str, b: str, balance: str) -> str:
    return textwrap.dedent(f"""
    backends:
      a: {{url: "{a}"}}
      b: {{url: "{b}"}}
    models:
      gpt: {{backend: [a, b], balance: {balance}}}
    chains:
      default: []
    """)


async def test_a_route_spreads_over_several_backends_and_ejects_a_failing_one(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    a, b = await replicas(MockConfig(fault="status=503"), MockConfig())
    proxy = await start_proxy(write_policy(spread_policy(a.url, b.url, "{eject_after: 1, eject_s: 60}")))
    failures = 0
    async with proxy.client() as client:
        for _ in range(6):
            try:
                raw = await client.chat.completions.with_raw_response.create(model="gpt", messages=MESSAGES)
                assert "x-chaperone-variant" not in raw.headers  # spreading is not an experiment
            except openai.InternalServerError:
                failures += 1
    assert failures == 1
    assert [await chat_count(u) for u in (a, b)] == [1, 5]


async def test_weighted_spread_over_backends(
    replicas: Replicas, start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    a, b = await replicas(MockConfig(), MockConfig())
    proxy = await start_proxy(write_policy(spread_policy(a.url, b.url, "{strategy: weighted, weights: [1, 3]}")))
    async with proxy.client() as client:
        for i in range(8):
            stream = await client.chat.completions.create(model="gpt", messages=MESSAGES, stream=i % 2 == 0)
            if i % 2 == 0:
                assert [c async for c in stream]  # type: ignore[union-attr]
    assert [await chat_count(u) for u in (a, b)] == [2, 6]
    split = split_of(proxy)
    assert split.balancer is not None
    assert [t.outstanding for t in split.balancer.targets] == [0, 0]
