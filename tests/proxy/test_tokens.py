"""Token counts: the official BPE files from the installed package, no network, OpenAI's chat accounting."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from proxy import tokens


def test_hello_world_matches_the_official_encodings() -> None:
    assert tokens.get_encoding("cl100k_base").encode("hello world") == [15339, 1917]
    assert tokens.get_encoding("o200k_base").encode("hello world") == [24912, 2375]


@pytest.mark.parametrize(
    ("model", "name", "exact"),
    [
        ("gpt-4o", "o200k_base", True),
        ("gpt-4o-mini-2024-07-18", "o200k_base", True),
        ("gpt-4.1-nano", "o200k_base", True),
        ("gpt-5", "o200k_base", True),
        ("o3-mini", "o200k_base", True),
        ("gpt-4", "cl100k_base", True),
        ("gpt-3.5-turbo-0125", "cl100k_base", True),
        ("openai/gpt-4o", "o200k_base", True),
        ("meta-llama/Llama-3.1-8B-Instruct", "o200k_base", False),
        ("claude-sonnet-4-5", "o200k_base", False),
        ("text-davinci-003", "o200k_base", False),  # p50k is not shipped: an estimate
    ],
)
def test_encoding_for_models(model: str, name: str, exact: bool) -> None:
    encoding, is_exact = tokens.encoding_for(model)
    assert (encoding.name, is_exact) == (name, exact)


def test_encodings_are_built_once() -> None:
    assert tokens.get_encoding("o200k_base") is tokens.encoding_for("gpt-4o")[0]


def test_count_treats_special_markers_as_text() -> None:
    assert tokens.count("hello world", "gpt-4") == 2
    assert tokens.count("<|endoftext|>", "gpt-4o") > 1


def test_count_chat_uses_openais_message_overhead() -> None:
    enc = tokens.get_encoding("cl100k_base")
    body = {
        "model": "gpt-4",
        "messages": [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "name": "ann", "content": "Hi there"},
        ],
    }
    values = ["system", "You are terse.", "user", "ann", "Hi there"]
    expected = 2 * tokens.TOKENS_PER_MESSAGE + tokens.TOKENS_PER_NAME + tokens.REPLY_PRIMING
    assert tokens.count_chat(body) == expected + sum(len(enc.encode(v)) for v in values)


def test_count_chat_counts_tools_as_json_and_images_as_a_fixed_estimate() -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    plain = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x"}]}
    enc = tokens.get_encoding("o200k_base")
    assert tokens.count_chat({**plain, "tools": tools}) - tokens.count_chat(plain) == len(
        enc.encode(json.dumps(tools, separators=(",", ":")))
    )
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 10_000}}
    with_image = {**plain, "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}, image]}]}
    assert tokens.count_chat(with_image) - tokens.count_chat(plain) == tokens.IMAGE_TOKENS


def test_loading_touches_no_network_and_writes_no_cache(tmp_path: Path) -> None:
    """In a fresh interpreter with sockets and HTTP disabled and an empty tiktoken cache, both encodings load."""
    script = textwrap.dedent(
        """
        import socket, urllib.request
        def refuse(*args, **kwargs):
            raise RuntimeError("network touched")
        socket.socket.connect = refuse
        socket.create_connection = refuse
        socket.getaddrinfo = refuse
        urllib.request.urlopen = refuse
        try:
            import requests
            requests.Session.request = refuse
        except ImportError:
            pass
        from proxy import tokens
        print(tokens.get_encoding("cl100k_base").encode("hello world"),
              tokens.get_encoding("o200k_base").encode("hello world"))
        """
    )
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    env = {"TIKTOKEN_CACHE_DIR": str(cache), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[15339, 1917] [24912, 2375]"
    assert list(cache.iterdir()) == []
    assert socket.socket.connect is not None  # this process was left alone


def test_a_resent_conversation_counts_the_same_per_encoding() -> None:
    """Message texts are memoised (a conversation resends its turns): counts stay tiktoken's, per encoding."""
    turn = "Über 3.14159 naïve café — 日本語のテキスト, émoji 🙂 and CamelCaseIdentifiers_with_snake. " * 6
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": turn}]}
    old = {**body, "model": "gpt-4"}
    o200k, cl100k = tokens.get_encoding("o200k_base"), tokens.get_encoding("cl100k_base")
    expect_new = 3 + 3 + 1 + len(o200k.encode_ordinary(turn))  # priming, message overhead, "user", text
    expect_old = 3 + 3 + 1 + len(cl100k.encode_ordinary(turn))
    assert expect_new != expect_old
    for _ in range(2):
        assert tokens.count_chat(body) == expect_new
        assert tokens.count_chat(old) == expect_old


def test_the_text_memo_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "_MEMO_BUDGET_CHARS", 1000)
    enc = tokens.get_encoding("o200k_base")
    for i in range(100):
        text = f"message number {i} " * 10
        assert tokens._text_tokens(enc, text) == len(enc.encode_ordinary(text))
    assert tokens._memo_chars <= 1000 + 200
