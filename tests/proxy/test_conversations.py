"""Stored responses: one owner per key, expiry, the context a follow-up gets, input items paging."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from proxy.conversations import Conversations, ResponsesConfig, owner_of
from proxy.errors import InvalidRequest, NotFound
from proxy.policy import Caller
from proxy.store import Store, StoreConfig, open_store


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def caller(name: str | None = None, *, key_id: str | None = None, authorization: str | None = None) -> Caller:
    return Caller(name, None, None, authorization, key_id=key_id)  # type: ignore[arg-type]


def response(rid: str, text: str) -> dict[str, Any]:
    return {"id": rid, "status": "completed", "output": [
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}]}]}  # fmt: skip


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def store(tmp_path: Path, clock: Clock) -> AsyncIterator[Store]:
    opened = open_store(StoreConfig(path=str(tmp_path / "store")), tmp_path, clock=clock)
    yield opened
    await opened.close()


def test_owners_never_collide_between_kinds_of_caller() -> None:
    owners = {
        owner_of(caller("app")), owner_of(caller(key_id="app")), owner_of(caller(authorization="Bearer a")),
        owner_of(caller(authorization="Bearer b")), owner_of(caller()),
    }  # fmt: skip
    assert len(owners) == 5
    assert "Bearer" not in "".join(owners)  # an open caller's credential is kept only as a digest


async def test_a_follow_up_gets_every_earlier_turn_in_order(store: Store) -> None:
    conversations = Conversations(store, ResponsesConfig())
    alice = caller("alice")
    assert await conversations.save(alice, response("resp_1", "hi Ada"), "I am Ada", 0)
    body: dict[str, Any] = {"input": "and chess", "previous_response_id": "resp_1"}
    expanded = await conversations.expand(alice, body)
    assert expanded is not None and expanded.own_from == 2
    assert [item.get("role") for item in body["input"]] == ["user", "assistant", "user"]
    await conversations.save(alice, response("resp_2", "chess!"), body["input"], expanded.own_from)
    third: dict[str, Any] = {"input": [{"role": "user", "content": "bye"}], "previous_response_id": "resp_2"}
    await conversations.expand(alice, third)
    texts = [i["content"] if isinstance(i["content"], str) else i["content"][0]["text"] for i in third["input"]]
    assert texts == ["I am Ada", "hi Ada", "and chess", "chess!", "bye"]
    items = await conversations.input_items(alice, "resp_2", order="asc")
    assert [item["content"][0]["text"] for item in items["data"]] == ["and chess"]


async def test_another_owner_sees_nothing(store: Store) -> None:
    conversations = Conversations(store, ResponsesConfig())
    await conversations.save(caller("alice"), response("resp_1", "secret"), "x", 0)
    bob = caller("bob")
    for call in (conversations.get(bob, "resp_1"), conversations.delete(bob, "resp_1"),
                 conversations.input_items(bob, "resp_1")):  # fmt: skip
        with pytest.raises(NotFound):
            await call
    with pytest.raises(InvalidRequest) as info:
        await conversations.expand(bob, {"input": "x", "previous_response_id": "resp_1"})
    assert info.value.param == "previous_response_id"


async def test_stored_responses_expire_and_big_ones_are_not_kept(store: Store, clock: Clock) -> None:
    conversations = Conversations(store, ResponsesConfig(store_ttl_s=60, max_stored_bytes=2048))
    alice = caller("alice")
    await conversations.save(alice, response("resp_1", "short"), "x", 0)
    assert not await conversations.save(alice, response("resp_2", "y" * 4000), "x", 0)
    clock.now += 59
    assert (await conversations.get(alice, "resp_1"))["id"] == "resp_1"
    clock.now += 2
    with pytest.raises(NotFound):
        await conversations.get(alice, "resp_1")


async def test_input_items_page_with_after(store: Store) -> None:
    conversations = Conversations(store, ResponsesConfig())
    alice = caller("alice")
    inputs = [{"role": "user", "content": f"m{i}"} for i in range(5)]
    await conversations.save(alice, response("resp_1", "ok"), inputs, 0)
    first = await conversations.input_items(alice, "resp_1", limit=2, order="asc")
    assert [i["content"][0]["text"] for i in first["data"]] == ["m0", "m1"] and first["has_more"]
    second = await conversations.input_items(alice, "resp_1", limit=2, order="asc", after=first["last_id"])
    assert [i["content"][0]["text"] for i in second["data"]] == ["m2", "m3"]
    newest = await conversations.input_items(alice, "resp_1", limit=1)
    assert newest["data"][0]["content"][0]["text"] == "m4"


async def test_a_read_waits_for_a_write_still_running_and_drain_finishes_them(store: Store) -> None:
    conversations = Conversations(store, ResponsesConfig())
    alice = caller("alice")
    body = response("resp_1", "hello")
    task = conversations.keep(alice, body, "x", 0)
    assert task is not None and not task.done()
    body["output"][0]["content"][0]["text"] = "restored original"  # the chain edits the client's copy afterwards
    got = await conversations.get(alice, "resp_1")  # not yet written when asked: the read waits
    assert got["output"][0]["content"][0]["text"] == "hello"
    conversations.keep(alice, response("resp_2", "later"), "y", 0)
    await conversations.drain()
    assert await store.get("responses:key:alice:resp_2") is not None


async def test_a_response_another_process_is_still_writing_is_found(store: Store, tmp_path: Path) -> None:
    """Replica A answers, then writes; the client's follow-up through replica B can get there first."""
    a, b = Conversations(store, ResponsesConfig()), Conversations(store, ResponsesConfig())
    alice = caller("alice")
    body: dict[str, Any] = {"input": "and chess", "previous_response_id": "resp_1"}
    follow_up = asyncio.ensure_future(b.expand(alice, body))
    await asyncio.sleep(0)  # B has read once and missed
    assert not follow_up.done()
    assert await a.save(alice, response("resp_1", "hi Ada"), "I am Ada", 0)
    expanded = await follow_up
    assert expanded is not None and expanded.previous_id == "resp_1"
    with pytest.raises(InvalidRequest, match="not found"):  # an id nobody writes is still a 400
        await b.expand(alice, {"input": "x", "previous_response_id": "resp_unknown"})
