"""Input token counts per endpoint: equal to tiktoken's (and OpenAI's cookbook) for OpenAI models."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import tiktoken
import tiktoken.model
from hypothesis import given, settings
from hypothesis import strategies as st

from proxy import messages_api, tokens
from tests.chain_helpers import counting_threads

# openai-cookbook, "How to count tokens with tiktoken": these messages are 129 prompt tokens on
# gpt-3.5-turbo and gpt-4 (cl100k_base) and 124 on gpt-4o and gpt-4o-mini (o200k_base), as the API reports.
COOKBOOK: list[dict[str, Any]] = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate "
     "jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch "
     "base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to "
     "do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client "
     "deliverable."},
]  # fmt: skip


@pytest.mark.parametrize(
    ("model", "expected"),
    [("gpt-3.5-turbo-0125", 129), ("gpt-4-0613", 129), ("gpt-4", 129), ("gpt-4o", 124), ("gpt-4o-mini", 124)],
)
def test_chat_matches_the_cookbook(model: str, expected: int) -> None:
    counted = tokens.count_request_sync("chat", {"model": model, "messages": COOKBOOK})
    assert counted == tokens.TokenCount(expected, True)


def cookbook_count(messages: list[dict[str, str]], enc: tiktoken.Encoding) -> int:
    """The cookbook's ``num_tokens_from_messages``, written against tiktoken directly."""
    total = 3
    for message in messages:
        total += 3
        for key, value in message.items():
            total += len(enc.encode(value))
            if key == "name":
                total += 1
    return total


safe_text = st.text(st.characters(codec="utf-8"), max_size=80).filter(lambda t: "<|" not in t)
message = st.fixed_dictionaries(
    {"role": st.sampled_from(["system", "user", "assistant"]), "content": safe_text},
    optional={"name": st.from_regex(r"[a-z_]{1,12}", fullmatch=True)},
)


@settings(max_examples=60, deadline=None)
@given(st.lists(message, max_size=6), st.sampled_from(["gpt-4o", "gpt-4", "gpt-4.1-mini", "o3", "gpt-3.5-turbo"]))
def test_chat_equals_tiktoken_on_any_text(messages: list[dict[str, str]], model: str) -> None:
    enc, exact = tokens.encoding_for(model)
    assert exact and enc.name == tiktoken.model.encoding_name_for_model(model)
    assert tokens.count_chat({"model": model, "messages": messages}) == cookbook_count(messages, enc)


def test_completions_embeddings_and_responses() -> None:
    enc = tokens.get_encoding("cl100k_base")
    text = "The quick brown fox jumps over the lazy dog."
    n = len(enc.encode(text))
    count = tokens.count_request_sync
    assert count("completions", {"model": "gpt-3.5-turbo-instruct", "prompt": text}) == tokens.TokenCount(n, True)
    assert count("completions", {"model": "gpt-3.5-turbo-instruct", "prompt": [text, text]}).tokens == 2 * n
    assert count("embeddings", {"model": "text-embedding-3-small", "input": text}) == tokens.TokenCount(n, True)
    assert count("embeddings", {"model": "text-embedding-3-small", "input": [[1, 2, 3], [4, 5]]}).tokens == 5
    o200k = tokens.get_encoding("o200k_base")
    as_chat = tokens.count_chat(
        {"model": "gpt-4o", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": text}]}
    )
    body = {"model": "gpt-4o", "instructions": "Be brief.", "input": text}
    assert count("responses", body) == tokens.TokenCount(as_chat, False)  # no published accounting: an estimate
    items = {"model": "gpt-4o", "input": [{"type": "message", "role": "user", "content": text}]}
    assert count("responses", items).tokens == 3 + 3 + 1 + len(o200k.encode(text))


def test_messages_use_the_messages_api_rules_and_are_an_estimate() -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "system": "Be brief.", "messages": [
        {"role": "user", "content": "hello"}]}  # fmt: skip
    assert tokens.count_request_sync("messages", body) == tokens.TokenCount(messages_api.count_tokens(body), False)


def test_messages_the_chat_translation_refuses_still_get_an_estimate() -> None:
    document = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "a long file"}}
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": [document]}]}
    counted = tokens.count_request_sync("messages", body)
    assert counted.tokens > 5 and not counted.exact


def test_other_models_are_labelled_an_estimate() -> None:
    counted = tokens.count_request_sync("chat", {"model": "meta-llama/Llama-3.1-8B-Instruct", "messages": COOKBOOK})
    assert counted == tokens.TokenCount(124, False)  # o200k, the estimate encoding


async def test_long_requests_are_counted_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads = counting_threads(monkeypatch)
    short = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    text = "word " * 20_000
    long: dict[str, Any] = {"model": "gpt-4o", "messages": [{"role": "user", "content": text}]}
    assert (await tokens.count_request("chat", short)).tokens == 8
    assert (await tokens.count_request("chat", long)).tokens == 7 + len(tokens.get_encoding("o200k_base").encode(text))
    assert threads[0] == threading.get_ident() and threads[1] != threading.get_ident()
