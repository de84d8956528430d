"""A backend's upstream API keys: rotation, resting a key that answered 401/429, and keeping keys secret.

``api_keys:`` on a backend gives several keys (each from an ``${ENV}`` variable). Requests take them
in turn; a key the upstream refused (401) or rate-limited (429) is rested for ``key_rest_s`` and the
same request is sent again with the next key, so the client never sees that key's failure. When
every key is resting, the least recently rested one is used rather than failing without trying.

Key material never leaves this module in clear: ``label`` names a key by its position
(``key#2``), and ``scrub`` removes every key of the backend from a text (an upstream's error message
may quote the key it was given).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence

ROTATE_ON = frozenset({401, 429})


class KeyPool:
    """The keys of one backend, in rotation; per process (resting is a local, short-lived state)."""

    __slots__ = ("_clock", "_keys", "_next", "_rested", "headers", "rest_s")

    def __init__(self, keys: Sequence[str], rest_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = tuple(keys)
        self.headers = tuple(f"Bearer {key}" for key in self._keys)  # prebuilt Authorization values
        self.rest_s = rest_s
        self._clock = clock
        self._rested = [0.0] * len(self._keys)  # until when each key rests (monotonic)
        self._next = itertools.cycle(range(len(self._keys)))

    def key(self, i: int) -> str:
        """Key ``i`` itself, for a provider whose credential header is not ``Authorization: Bearer``."""
        return self._keys[i]

    def __len__(self) -> int:
        return len(self._keys)

    def pick(self, tried: frozenset[int] = frozenset()) -> int | None:
        """The index of the next key to use, skipping ``tried`` and resting keys; None when none is left."""
        now = self._clock()
        for _ in range(len(self._keys)):
            index = next(self._next)
            if index not in tried and self._rested[index] <= now:
                return index
        spare = [i for i in range(len(self._keys)) if i not in tried]
        if not tried and spare:  # all resting: the first attempt still goes, on the one resting longest
            return min(spare, key=lambda i: self._rested[i])
        return None

    def rest(self, index: int) -> None:
        self._rested[index] = self._clock() + self.rest_s

    def resting(self) -> int:
        now = self._clock()
        return sum(1 for until in self._rested if until > now)

    @staticmethod
    def label(index: int) -> str:
        return f"key#{index + 1}"

    def scrub(self, text: str) -> str:
        """``text`` with every key of this pool replaced by its label."""
        for index, key in enumerate(self._keys):
            if key in text:
                text = text.replace(key, self.label(index))
        return text

    def scrub_bytes(self, data: bytes) -> bytes:
        for index, key in enumerate(self._keys):
            raw = key.encode()
            if raw in data:
                data = data.replace(raw, self.label(index).encode())
        return data

    def status(self) -> dict[str, int]:
        return {"keys": len(self._keys), "resting": self.resting()}
