"""``POST /chaperone/feedback``: attached by request id, for the key that made the request or the admin key only."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from plugins._capture.store import CaptureStore
from tests.capture.helpers import ADMIN, CARD, EMAIL, THREAD, assert_no_canary, policy, store_bytes
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy


@pytest.fixture
async def keyed(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> RunningProxy:
    return await start_proxy(write_policy(policy(mock_upstream.url, f"[pii, {THREAD}]")))


async def ask(proxy: RunningProxy, key: str) -> str:
    async with proxy.client(key) as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="mock-gpt", messages=[{"role": "user", "content": "What is the capital of France?"}]
        )
    return raw.headers["x-request-id"]


async def feedback(proxy: RunningProxy, key: str | None, body: Any) -> tuple[int, dict[str, Any]]:
    base = proxy.url.removesuffix("/v1")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with aiohttp.ClientSession() as session:
        async with session.post(base + "/chaperone/feedback", json=body, headers=headers) as response:
            return response.status, await response.json()


def stored(proxy: RunningProxy) -> dict[str, Any]:
    plugin = next(p for p in proxy.runtime.in_force().policy.plugins if getattr(p, "name", "") == "capture")
    return {r["request_id"]: r for r in CaptureStore(plugin.path, readonly=True).rows()}


async def test_feedback_is_attached_by_request_id_and_its_text_masked(keyed: RunningProxy, tmp_path: Path) -> None:
    request_id = await ask(keyed, "sk-app1")  # feedback right after the answer: the record may still be queued
    correction = f"Paris. Write to {EMAIL} for more; my card is {CARD}."
    status, body = await feedback(
        keyed,
        "sk-app1",
        {
            "request_id": request_id,
            "good": False,
            "score": 0.2,
            "comment": f"wrong, mail {EMAIL}",
            "correction": correction,
        },
    )
    assert status == 200 and body == {"object": "feedback", "request_id": request_id, "stored": True}
    fb = stored(keyed)[request_id]["feedback"]
    assert fb["good"] is False and fb["score"] == 0.2 and fb["author"] == "app1"
    assert fb["comment"] == "wrong, mail <EMAIL_ADDRESS_1>"
    assert fb["correction"]["content"] == "Paris. Write to <EMAIL_ADDRESS_1> for more; my card is <CREDIT_CARD_1>."
    status, _ = await feedback(keyed, ADMIN, {"request_id": request_id, "good": True})  # the admin may too; it replaces
    fb = stored(keyed)[request_id]["feedback"]
    assert status == 200 and fb["good"] is True and fb["author"] == "admin" and fb["correction"] is None
    await keyed.runner.cleanup()
    assert_no_canary(store_bytes(tmp_path / "home"))


async def test_feedback_is_refused_for_another_key_unknown_ids_and_bad_bodies(keyed: RunningProxy) -> None:
    request_id = await ask(keyed, "sk-app1")
    status, body = await feedback(keyed, "sk-app2", {"request_id": request_id, "good": True})
    assert status == 403 and body["error"]["code"] == "feedback_forbidden"
    assert stored(keyed)[request_id]["feedback"] is None
    status, body = await feedback(keyed, "sk-app1", {"request_id": "no-such-request", "good": True})
    assert status == 404 and body["error"]["code"] == "request_not_captured"
    status, body = await feedback(keyed, None, {"request_id": request_id, "good": True})
    assert status == 401
    status, body = await feedback(keyed, "sk-wrong", {"request_id": request_id, "good": True})
    assert status == 401
    status, body = await feedback(keyed, "sk-app1", {"request_id": request_id})
    assert status == 400 and "at least one of" in body["error"]["message"]
    status, body = await feedback(keyed, "sk-app1", {"request_id": request_id, "good": "yes", "stars": 5})
    assert status == 400 and body["error"]["type"] == "invalid_request_error"


async def test_feedback_without_a_capture_step_is_404(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(policy(mock_upstream.url, "[pii]")))
    status, body = await feedback(proxy, "sk-app1", {"request_id": "x", "good": True})
    assert status == 404 and body["error"]["code"] == "capture_disabled"


async def test_a_policy_reload_keeps_capturing_and_old_records_take_feedback(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(policy(mock_upstream.url, f"[pii, {THREAD}]")))
    before = await ask(proxy, "sk-app1")
    write_policy(policy(mock_upstream.url, "[pii, {capture: {writer: thread, tags: []}}]"))  # same file, new instance
    assert await proxy.runtime.reload()
    after = await ask(proxy, "sk-app1")
    for request_id in (before, after):
        status, _ = await feedback(proxy, "sk-app1", {"request_id": request_id, "good": True})
        assert status == 200
    found = stored(proxy)
    assert found[before]["feedback"]["good"] is True and found[after]["feedback"]["good"] is True
