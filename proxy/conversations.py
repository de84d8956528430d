"""Conversation state for the Responses API: stored responses and ``previous_response_id``, on any backend.

A response created with ``store`` (the API's default) is kept in the policy's state store (diskcache,
or Redis so that every replica sees it) for ``responses.store_ttl_s``, under its owner: the virtual key
id, the static key's name, or in open mode a digest of the client's own ``Authorization``. One owner
never reads, lists or deletes another's responses; for them it does not exist (404).

What is kept is what the model saw and wrote: the request's input items *after* the chain ran and
the answer *before* the response hooks ran, so with ``pii`` in the chain the store holds placeholders,
never the originals. A follow-up request names ``previous_response_id``; ``expand`` replaces its
``input`` by the stored context (every earlier input item and output item, in order) followed by its
own input, before the chain runs, so guards and budgets see everything the model will read.
``instructions`` are not carried over, as in OpenAI's API.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from proxy.errors import InvalidRequest, NotFound
from proxy.exchange import StashKey

if TYPE_CHECKING:
    from proxy.policy import Caller
    from proxy.store import Store

__all__ = ["EXPANDED", "Conversations", "Expanded", "ResponsesConfig", "input_items", "owner_of"]

log = logging.getLogger(__name__)

EXPANDED = StashKey[int]()
"""Set by the server when ``previous_response_id`` was expanded: where the request's own input starts."""

_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco", "reasoning": "rs"}


class ResponsesConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    store_ttl_s: float = Field(
        default=30 * 86400.0, gt=0, description="How long a stored response can be retrieved or continued."
    )
    max_stored_bytes: int = Field(
        default=8 * 1024 * 1024,
        ge=1024,
        description="A response whose stored record (context and answer) would be larger is not stored.",
    )


def owner_of(caller: Caller) -> str:
    """Whose stored responses a caller sees: its virtual key, its static key, or (open) its own credential."""
    if caller.key_id:
        return f"vk:{caller.key_id}"
    if caller.name is not None:
        return f"key:{caller.name}"
    if caller.authorization:
        return "open:" + hashlib.sha256(caller.authorization.encode()).hexdigest()[:32]
    return "open"


def input_items(value: Any) -> list[dict[str, Any]]:
    """``input`` as a list of items (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": value}]
    if isinstance(value, list):
        return [item for item in value if isinstance(item, dict)]
    return []


def _item_id(item: dict[str, Any]) -> str:
    if isinstance(item.get("id"), str):
        return str(item["id"])
    kind = item.get("type") or "message"
    return f"{_PREFIXES.get(kind, 'item')}_{secrets.token_hex(24)}"


def _with_ids(items: list[dict[str, Any]], ids: list[str]) -> list[dict[str, Any]]:
    """Items as ``input_items`` lists them: each with its ``id`` and ``type``, message content as parts."""
    out = []
    for item, item_id in zip(items, ids, strict=False):
        kind = item.get("type") or ("message" if "role" in item else "item")
        entry = {**item, "type": kind, "id": item_id}
        if kind == "message" and isinstance(entry.get("content"), str):
            part = "output_text" if entry.get("role") == "assistant" else "input_text"
            entry["content"] = [{"type": part, "text": entry["content"]}]
        out.append(entry)
    return out


@dataclass(slots=True)
class Expanded:
    """What ``expand`` did to a request: where the request's own input starts in ``input``."""

    previous_id: str
    own_from: int


MISS_WAIT_S = 0.3
"""How long a stored response that is not found is looked for again (another process may be writing it)."""


class Conversations:
    """Stored responses of one policy's store; every method takes the caller, and only sees its owner's.

    ``keep`` writes in the background, so the answer is not held up by the store (a diskcache write
    costs about a millisecond); a read of a response whose write is still running waits for it, so a
    client that continues at once on the same process always finds it. ``drain`` waits for every
    write (the runtime calls it before a retired policy lets its store go).
    """

    def __init__(self, store: Store, config: ResponsesConfig) -> None:
        self.store = store
        self.config = config
        self._pending: dict[str, asyncio.Task[bool]] = {}

    @staticmethod
    def _key(caller: Caller, response_id: str) -> str:
        return f"responses:{owner_of(caller)}:{response_id}"

    async def _record(self, caller: Caller, response_id: str) -> dict[str, Any] | None:
        """The stored record; a miss is read again a few times over ``MISS_WAIT_S`` before it counts.

        Another replica (or worker) answers first and writes after: a client that continues at once
        through another process can overtake that write by a fraction of a millisecond. Only an id
        that is really unknown pays the wait.
        """
        key = self._key(caller, response_id)
        pending = self._pending.get(key)
        if pending is not None:
            await asyncio.wait([pending])
        raw = await self.store.get(key)
        delay, waited = 0.005, 0.0
        while raw is None and waited < MISS_WAIT_S:
            await asyncio.sleep(delay)
            waited += delay
            delay *= 2
            raw = await self.store.get(key)
        return orjson.loads(raw) if raw else None

    async def expand(self, caller: Caller, body: dict[str, Any]) -> Expanded | None:
        """Put the stored context of ``previous_response_id`` before ``body``'s input (None when it has none).

        An id this owner has not stored is a 400 ``previous_response_not_found``, as OpenAI answers.
        """
        previous = body.get("previous_response_id")
        if not isinstance(previous, str):
            return None
        record = await self._record(caller, previous)
        if record is None:
            raise InvalidRequest(
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        context = [*record["context"], *_as_input(record["response"].get("output"))]
        body["input"] = [*context, *input_items(body.get("input"))]
        return Expanded(previous, len(context))

    async def save(self, caller: Caller, response: dict[str, Any], sent: Any, own_from: int) -> bool:
        """Keep ``response`` with the input the model saw (``sent``); False when it is too large to keep."""
        task = self.keep(caller, response, sent, own_from)
        return await task if task is not None else False

    def keep(self, caller: Caller, response: dict[str, Any], sent: Any, own_from: int) -> asyncio.Task[bool] | None:
        """Start keeping ``response`` in the background; None when it has no id or is too large to keep.

        The record is serialised now, so later edits of ``response`` (the chain restoring PII in the
        client's copy) never reach the store.
        """
        response_id = response.get("id")
        if not isinstance(response_id, str):
            return None
        items = input_items(sent)
        ids = [_item_id(item) for item in items[own_from:]]  # stable, so input_items pages with 'after'
        data = orjson.dumps({"response": response, "context": items, "own_from": own_from, "ids": ids})
        if len(data) > self.config.max_stored_bytes:
            return None
        key = self._key(caller, response_id)
        task = asyncio.ensure_future(self._write(key, data))
        self._pending[key] = task
        task.add_done_callback(lambda _: self._pending.pop(key, None) if self._pending.get(key) is task else None)
        return task

    async def _write(self, key: str, data: bytes) -> bool:
        try:
            await self.store.set(key, data, ttl_s=self.config.store_ttl_s)
        except Exception:
            log.exception("could not store response %s", key.rsplit(":", 1)[-1])
            return False
        return True

    async def drain(self) -> None:
        """Wait until every background write has finished."""
        while self._pending:
            await asyncio.wait(list(self._pending.values()))

    async def get(self, caller: Caller, response_id: str) -> dict[str, Any]:
        record = await self._record(caller, response_id)
        if record is None:
            raise _not_found(response_id)
        response: dict[str, Any] = record["response"]
        return response

    async def delete(self, caller: Caller, response_id: str) -> dict[str, Any]:
        if not await self.store.delete(self._key(caller, response_id)):
            raise _not_found(response_id)
        return {"id": response_id, "object": "response", "deleted": True}

    async def input_items(
        self, caller: Caller, response_id: str, *, limit: int = 20, order: str = "desc", after: str | None = None
    ) -> dict[str, Any]:
        """The response's own input items (not the earlier turns'), paged like OpenAI's list endpoints."""
        record = await self._record(caller, response_id)
        if record is None:
            raise _not_found(response_id)
        items = _with_ids(record["context"][record["own_from"] :], record["ids"])
        if order == "desc":
            items.reverse()
        if after is not None:
            at = next((i for i, item in enumerate(items) if item.get("id") == after), None)
            items = items[at + 1 :] if at is not None else []
        page = items[:limit]
        return {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }


def _as_input(output: Any) -> list[dict[str, Any]]:
    """A stored answer's output items, as input items of the next turn (the API accepts them as they are;
    a chat-only backend's translation drops ``reasoning`` items)."""
    if not isinstance(output, list):
        return []
    return [item for item in output if isinstance(item, dict)]


def _not_found(response_id: str) -> NotFound:
    return NotFound(f"Response with id '{response_id}' not found.", param="response_id", code="response_not_found")
