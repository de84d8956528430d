"""The capture plugin end to end: the openai SDK over real sockets, records in SQLite, no original PII in them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from plugins._capture.store import CaptureStore
from tests.capture.helpers import EMAIL, PROMPT, THREAD, assert_no_canary, policy, store_bytes
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy

PII_CHAIN = "[pii, capture]"


def capture_of(proxy: RunningProxy) -> Any:
    active = proxy.runtime.in_force()
    return next(p for p in active.policy.plugins if getattr(p, "name", None) == "capture")


async def rows(proxy: RunningProxy) -> list[dict[str, Any]]:
    plugin = capture_of(proxy)
    await plugin.writer.flush()
    return list(CaptureStore(plugin.path, readonly=True).rows())


@pytest.mark.parametrize("chain", ["[pii, capture]", f"[{THREAD}]", f"[{THREAD}, pii]"])  # the first: a writer process
async def test_captured_text_is_masked_whether_or_not_the_chain_masks(
    chain: str,
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    proxy = await start_proxy(write_policy(policy(mock_upstream.url, chain)))
    async with proxy.client("sk-app1") as client:
        answer = await client.chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": PROMPT}], user=EMAIL
        )
        stream = await client.chat.completions.create(
            model="mock-gpt", messages=[{"role": "user", "content": PROMPT}], stream=True
        )
        streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    if "pii" in chain:  # the client gets its own data back
        assert EMAIL in (answer.choices[0].message.content or "") and EMAIL in streamed
    found = await rows(proxy)
    assert len(found) == 2 and {r["key"] for r in found} == {"app1"}
    for row in found:
        user = row["request"]["messages"][0]["content"]
        assert "<EMAIL_ADDRESS_1>" in user and "<CREDIT_CARD_1>" in user, user
        assert "<EMAIL_ADDRESS_1>" in row["answer"]["content"], row["answer"]
        assert "user" not in row["request"]  # fields outside the conversation are not kept
        assert row["masked_by"] == ("pii" if chain == "[pii, capture]" else "capture" if "pii" not in chain
                                    else "pii+capture")  # fmt: skip
        assert row["status"] == 200 and row["events"] == [] and row["judge_score"] is None
    await proxy.runner.cleanup()
    assert_no_canary(store_bytes(tmp_path / "home"))


async def test_record_holds_metadata_and_metadata_only_keeps_no_text(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    chain = "[pii, {capture: {retention: metadata_only, writer: thread}}]"
    proxy = await start_proxy(write_policy(policy(mock_upstream.url, chain)))
    async with proxy.client("sk-app2") as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="mock-gpt", messages=[{"role": "user", "content": PROMPT}], extra_headers={"x-chaperone-tags": "b, a"}
        )
    (row,) = await rows(proxy)
    assert row["request_id"] == raw.headers["x-request-id"] and row["key"] == "app2" and row["model"] == "mock-gpt"
    assert row["tags"] == ["a", "b"] and row["backend"] == "mock" and row["latency_ms"] > 0
    assert row["prompt_tokens"] > 0 and row["completion_tokens"] > 0 and row["retention"] == "metadata_only"
    assert row["request"] is None and row["answer"] is None and row["drafts"] is None
    assert row["policy_digest"] is not None and len(row["policy_digest"]) == 16 and row["schema"] == 1


@pytest.mark.parametrize(
    ("config", "kept"),
    [
        ("{}", ["keep", "other", "failed"]),
        ("{models: [other]}", []),
        ("{keys: [app2]}", []),
        ("{keys: [app1]}", ["keep", "other", "failed"]),
        ("{tags: [keep]}", ["keep"]),
        ("{status: error}", ["failed"]),
        ("{status: success}", ["keep", "other"]),
        ("{sample: 0.0}", []),
        ("{endpoints: [completions]}", []),
    ],
)
async def test_filters_choose_what_is_captured(
    config: str,
    kept: list[str],
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
) -> None:
    chain = "[pii, {capture: {writer: thread, " + config[1:] + "}]"
    proxy = await start_proxy(write_policy(policy(mock_upstream.url, chain)))
    body = {"model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}
    async with aiohttp.ClientSession(headers={"Authorization": "Bearer sk-app1"}) as session:
        for tags, fault in (("keep", ""), ("other", ""), ("failed", "status=500")):
            headers = {"x-chaperone-tags": tags, **({"x-mock-fault": fault} if fault else {})}
            async with session.post(proxy.url + "/chat/completions", json=body, headers=headers) as response:
                assert response.status == (502 if fault else 200) or response.status >= 500
    found = await rows(proxy)
    assert sorted(r["tags"][0] for r in found) == sorted(kept)
    for row in found:
        assert (row["status"] >= 500) == (row["tags"] == ["failed"])
        if row["status"] >= 500:
            assert row["answer"] is None and row["attempts"][-1]["status"] == 500


async def test_a_pii_step_that_fails_open_does_not_let_originals_into_the_store(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from plugins._pii.detect import PiiDetector

    proxy = await start_proxy(write_policy(policy(mock_upstream.url, f"[{{pii: {{on_error: allow}}}}, {THREAD}]")))
    real = PiiDetector.analyze_many

    async def broken(self: PiiDetector, texts: list[str]) -> list[Any]:
        if any("Please write" in t for t in texts):  # the pii step's call, not capture's own (a sync analyze)
            raise RuntimeError("detector down")
        return await real(self, texts)

    monkeypatch.setattr(PiiDetector, "analyze_many", broken)
    async with proxy.client("sk-app1") as client:
        await client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": PROMPT}])
    (row,) = await rows(proxy)
    assert row["masked_by"] == "capture" and "<EMAIL_ADDRESS_1>" in row["request"]["messages"][0]["content"]
    await proxy.runner.cleanup()
    assert_no_canary(store_bytes(tmp_path / "home"))


async def test_a_router_fallback_is_an_event_of_the_record(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> None:
    text = f"""
    backends:
      dead: {{url: "http://127.0.0.1:9/v1", timeout_s: 2}}
      mock: {{url: "{mock_upstream.url}"}}
    models:
      primary: {{backend: dead, fallback: [spare]}}
      spare: {{backend: mock}}
    chains:
      default: [{THREAD}]
    """
    proxy = await start_proxy(write_policy(text))
    async with proxy.client() as client:
        await client.chat.completions.create(model="primary", messages=[{"role": "user", "content": "hi"}])
    (row,) = await rows(proxy)
    assert row["events"] == ["fallback"] and row["backend"] == "mock" and row["model"] == "primary"
    assert [a["backend"] for a in row["attempts"]] == ["dead", "mock"] and row["attempts"][0]["error"]
