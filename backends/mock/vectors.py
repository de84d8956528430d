"""Deterministic unit-norm embedding vectors derived from a hash of the input."""

from __future__ import annotations

import base64
import hashlib
import math
import struct

DEFAULT_DIMENSIONS = 16
MAX_DIMENSIONS = 8192


def embed(data: bytes, dimensions: int) -> list[float]:
    """Return a unit-norm vector of ``dimensions`` floats, the same for the same ``data``."""
    raw = hashlib.shake_256(data).digest(2 * dimensions)
    values = [x / 32767.5 - 1.0 for x in struct.unpack(f"<{dimensions}H", raw)]
    norm = math.sqrt(sum(x * x for x in values)) or 1.0
    return [x / norm for x in values]


def to_base64(vector: list[float]) -> str:
    """Encode like OpenAI's ``encoding_format="base64"``: little-endian float32, base64."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


def input_bytes(item: str | list[int]) -> bytes:
    """The bytes an input is hashed from: UTF-8 text, or the token ids for token-array inputs."""
    if isinstance(item, str):
        return item.encode("utf-8")
    return b"tokens:" + ",".join(map(str, item)).encode("ascii")
