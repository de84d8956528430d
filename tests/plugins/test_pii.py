"""The pii plugin through the real chain: config errors, masking modes, restoration whole and streamed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from plugins.pii import Pii
from proxy import ApiResponse, Exchange, PolicyViolation
from proxy.policy import Policy, PolicyError
from proxy.registry import PluginRegistry
from tests.chain_helpers import CHAT_OK, StubBackend, compile_chain_policy, make_exchange, sse_data

EMAIL = "jane.roe@example.org"


def policy(registry: PluginRegistry, config: str = "{}") -> Policy:
    return compile_chain_policy(f"[{{pii: {config}}}]", registry)


async def started(p: Policy) -> Policy:
    for chain in p.chains.values():
        await chain.startup(None)
    return p


def chat(content: Any, **extra: Any) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": content}], **extra}


def echo(exchange: Exchange) -> dict[str, Any]:
    """A whole answer echoing the (masked) user text."""
    answer = json.loads(json.dumps(CHAT_OK))
    answer["choices"][0]["message"]["content"] = "echo: " + exchange.request.messages[-1]["content"]
    return answer


def sse(chunks: list[dict[str, Any]], done: bool = True) -> ApiResponse:
    async def gen() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield b"data: " + json.dumps(chunk).encode() + b"\n\n"
        if done:
            yield b"data: [DONE]\n\n"

    return ApiResponse(200, stream=gen())


def delta(text: str, index: int = 0, finish: str | None = None) -> dict[str, Any]:
    return {"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": "m",
            "choices": [{"index": index, "delta": {"content": text}, "finish_reason": finish}]}  # fmt: skip


async def stream_text(p: Policy, body: dict[str, Any], pieces_of: Any, done: bool = True) -> tuple[str, list[Any]]:
    exchange = make_exchange(p, body)
    response = await p.default_chain.run(exchange, StubBackend(lambda ex: sse(pieces_of(ex), done)))
    assert response.stream is not None
    raw = b"".join([block async for block in p.default_chain.process_stream(exchange, response.stream)])
    data = sse_data(raw)
    text = "".join(d["choices"][0]["delta"].get("content") or "" for d in data if isinstance(d, dict) and d["choices"])
    return text, data


# ---- config ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ("{mode: hide}", "chains.default[0].pii.mode"),
        ("{modes: {EMAIL_ADDRESS: shred}}", "chains.default[0].pii.modes.EMAIL_ADDRESS"),
        ("{on_error: maybe}", "chains.default[0].pii.on_error"),
        ("{surprise: 1}", "chains.default[0].pii.surprise"),
    ],
)
def test_config_mistakes_name_their_yaml_path(registry: PluginRegistry, config: str, where: str) -> None:
    with pytest.raises(PolicyError) as caught:
        policy(registry, config)
    assert any(error.startswith(where + ":") for error in caught.value.errors), caught.value.errors


# ---- requests -------------------------------------------------------------------------------------------


async def test_every_text_of_the_request_is_masked_consistently(registry: PluginRegistry) -> None:
    p = await started(policy(registry))
    stub = StubBackend(echo)
    body = {"model": "m", "messages": [
        {"role": "system", "content": f"The user is {EMAIL}."},
        {"role": "user", "content": [{"type": "text", "text": f"I am {EMAIL}, card 4111 1111 1111 1111"}]},
        {"role": "tool", "tool_call_id": "x", "content": "other@example.com wrote back"},
        {"role": "user", "content": f"reply to {EMAIL}"},
    ]}  # fmt: skip
    exchange = make_exchange(p, body)
    response = await p.default_chain.run(exchange, stub)
    sent = json.dumps(stub.calls[0])
    assert EMAIL not in sent and "4111" not in sent and "other@example.com" not in sent
    messages = stub.calls[0]["messages"]
    assert messages[0]["content"] == "The user is <EMAIL_ADDRESS_1>."
    assert messages[1]["content"][0]["text"] == "I am <EMAIL_ADDRESS_1>, card <CREDIT_CARD_1>"
    assert messages[2]["content"] == "<EMAIL_ADDRESS_2> wrote back"
    assert response.json()["choices"][0]["message"]["content"] == f"echo: reply to {EMAIL}"
    assert response.headers["x-chaperone-pii"] == "CREDIT_CARD=1,EMAIL_ADDRESS=4"  # occurrences masked


async def test_mask_redact_and_block_modes(registry: PluginRegistry) -> None:
    p = await started(policy(registry, "{mode: mask, modes: {CREDIT_CARD: redact, US_SSN: block}}"))
    stub = StubBackend(echo)
    response = await p.default_chain.run(make_exchange(p, chat(f"{EMAIL} 4111 1111 1111 1111")), stub)
    assert stub.calls[0]["messages"][0]["content"] == "<EMAIL_ADDRESS> [REDACTED]"
    assert response.json()["choices"][0]["message"]["content"] == "echo: <EMAIL_ADDRESS> [REDACTED]"  # one way
    with pytest.raises(PolicyViolation) as caught:
        await p.default_chain.run(make_exchange(p, chat("SSN 536-22-8726")), stub)
    assert caught.value.code == "pii_detected" and "US_SSN" in caught.value.message
    assert "536-22-8726" not in caught.value.message and len(stub.calls) == 1


async def test_a_literal_placeholder_typed_by_the_user_is_never_restored(registry: PluginRegistry) -> None:
    p = await started(policy(registry))
    stub = StubBackend(echo)
    exchange = make_exchange(p, chat(f"<EMAIL_ADDRESS_1> is my template, {EMAIL} my address"))
    response = await p.default_chain.run(exchange, stub)
    assert stub.calls[0]["messages"][0]["content"] == "<EMAIL_ADDRESS_1> is my template, <EMAIL_ADDRESS_2> my address"
    assert response.json()["choices"][0]["message"]["content"] == (
        f"echo: <EMAIL_ADDRESS_1> is my template, {EMAIL} my address"
    )


async def test_clean_requests_are_left_untouched_and_unparsed(registry: PluginRegistry) -> None:
    p = await started(policy(registry))
    exchange = make_exchange(p, chat("nothing personal here"))
    response = await p.default_chain.run(exchange, StubBackend(lambda ex: ApiResponse(200, raw=b'{"x": 1}')))
    assert response.body is None and response.raw == b'{"x": 1}'  # the answer was never parsed
    assert "x-chaperone-pii" not in response.headers


async def test_a_non_json_answer_passes_unchanged(registry: PluginRegistry) -> None:
    p = await started(policy(registry))
    exchange = make_exchange(p, chat(f"to {EMAIL}"))
    response = await p.default_chain.run(exchange, StubBackend(lambda ex: ApiResponse(200, raw=b"<html>oops")))
    assert response.raw == b"<html>oops" and response.body is None


async def test_detection_failure_follows_on_error(registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: Any, texts: list[str]) -> Any:
        raise RuntimeError("detector fell over")

    for on_error, refused in (("block", True), ("allow", False)):
        p = await started(policy(registry, f"{{on_error: {on_error}}}"))
        plugin = p.default_chain.steps[0].plugin
        assert isinstance(plugin, Pii)
        monkeypatch.setattr(type(plugin.detector), "analyze_many", broken)
        stub = StubBackend()
        if refused:
            with pytest.raises(PolicyViolation) as caught:
                await p.default_chain.run(make_exchange(p, chat(EMAIL)), stub)
            assert caught.value.code == "pii_check_failed" and stub.calls == []
        else:
            await p.default_chain.run(make_exchange(p, chat(EMAIL)), stub)
            assert stub.calls[0]["messages"][0]["content"] == EMAIL
        monkeypatch.undo()


# ---- streams --------------------------------------------------------------------------------------------


def char_stream(exchange: Exchange, finish: bool = True) -> list[dict[str, Any]]:
    """The masked user text echoed one character per chunk (every placeholder split at every position)."""
    text = "echo: " + exchange.request.messages[-1]["content"]
    chunks = [delta(ch) for ch in text]
    if finish:
        chunks.append(delta("", finish="stop"))
    return chunks


async def test_a_stream_split_one_character_per_chunk_is_restored(registry: PluginRegistry) -> None:
    p = await started(policy(registry))
    prompt = f"{EMAIL} and {EMAIL}, then 4111 1111 1111 1111<x"
    text, data = await stream_text(p, chat(prompt), char_stream)
    assert text == f"echo: {prompt}"
    assert data[-1] == "[DONE]"


async def test_held_back_text_is_released_when_the_stream_ends_without_finish_reason(registry: PluginRegistry) -> None:
    p = await started(policy(registry))

    def cut(exchange: Exchange) -> list[dict[str, Any]]:
        return [delta("Mail "), delta("<EMAIL_ADDRESS_1"), delta("> now <EMAIL_ADDR")]

    text, data = await stream_text(p, chat(f"write {EMAIL}"), cut, done=False)
    assert text == f"Mail {EMAIL} now <EMAIL_ADDR"  # the partial placeholder is released as it was
    text, data = await stream_text(p, chat(f"write {EMAIL}"), cut, done=True)
    assert text == f"Mail {EMAIL} now <EMAIL_ADDR" and data[-1] == "[DONE]"


async def test_finish_reason_releases_held_text_of_that_choice_only(registry: PluginRegistry) -> None:
    p = await started(policy(registry))

    def two(exchange: Exchange) -> list[dict[str, Any]]:
        return [delta("a <EMAIL", 0), delta("b <EMAIL", 1), delta("", 0, "stop"), delta("_ADDRESS_1>", 1),
                delta("", 1, "stop")]  # fmt: skip

    exchange = make_exchange(p, chat(f"x {EMAIL}", n=2))
    response = await p.default_chain.run(exchange, StubBackend(lambda ex: sse(two(ex))))
    assert response.stream is not None
    data = sse_data(b"".join([b async for b in p.default_chain.process_stream(exchange, response.stream)]))
    texts: dict[int, str] = {0: "", 1: ""}
    for d in data[:-1]:
        for choice in d["choices"]:
            texts[choice["index"]] += choice["delta"].get("content") or ""
    assert texts == {0: "a <EMAIL", 1: f"b {EMAIL}"}
    finish_0 = next(d for d in data[:-1] if d["choices"][0]["finish_reason"] == "stop")
    assert finish_0["choices"][0]["delta"]["content"] == "<EMAIL"  # released with the finish chunk


async def test_scan_reports_entities_and_the_action_without_changing_the_request(registry: PluginRegistry) -> None:
    p = await started(policy(registry, "{modes: {CREDIT_CARD: block}}"))
    plugin = p.default_chain.steps[0].plugin
    request = make_exchange(p, chat(f"{EMAIL} 4111 1111 1111 1111")).request
    report = await plugin.scan(request)
    assert report is not None and report["action"] == "block"
    assert sorted(e["type"] for e in report["entities"]) == ["CREDIT_CARD", "EMAIL_ADDRESS"]
    assert request.messages[0]["content"] == f"{EMAIL} 4111 1111 1111 1111"
    clean = await plugin.scan(make_exchange(p, chat("hello")).request)
    assert clean == {"entities": [], "action": None}
