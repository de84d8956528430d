"""Context windows per model: a built-in table of common models, overridable per policy.

A name matches its own entry, else the longest entry it extends with ``-``, ``:``, ``@`` or ``.``
(``gpt-4o-2024-08-06`` → ``gpt-4o``, ``claude-sonnet-4-5`` → ``claude``), compared in lower case after
dropping a provider prefix (``meta-llama/Llama-3.1-8B-Instruct`` → ``llama-3.1``). Sizes are the
vendors' published totals (input + output) as of 2025-08.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

WINDOWS: Mapping[str, int] = {
    "gpt-5": 400_000,
    "gpt-4.1": 1_047_576,
    "gpt-4o": 128_000,
    "gpt-4-turbo": 128_000,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 16_385,
    "o1": 200_000,
    "o1-mini": 128_000,
    "o3": 200_000,
    "o4-mini": 200_000,
    "gpt-oss": 131_072,
    "claude": 200_000,
    "llama-3.1": 131_072,
    "llama-3.2": 131_072,
    "llama-3.3": 131_072,
    "llama-3": 8_192,
    "mistral": 32_768,
    "mixtral": 32_768,
    "qwen2.5": 32_768,
    "qwen3": 32_768,
    "gemma-2": 8_192,
    "gemma-3": 131_072,
    "text-embedding-3": 8_191,
    "text-embedding-ada-002": 8_191,
}
_SEPARATORS = ("-", ":", "@", ".", "_")


def window_for(model: str, overrides: Mapping[str, int], default: int | None = None) -> int | None:
    """The context window of ``model``: the policy's entry, else the table's, else ``default``.

    ``overrides`` has lower-case names (the plugin lowers the policy's ``context_windows`` once). The
    table's answer is memoised per model name (finding a family prefix scans the whole table).
    """
    name = model.rsplit("/", 1)[-1].lower()
    if overrides:
        found = _lookup(name, overrides)
        if found is not None:
            return found
    found = _table_window(name)
    return default if found is None else found


@functools.lru_cache(maxsize=4096)
def _table_window(name: str) -> int | None:
    return _lookup(name, WINDOWS)


def _lookup(name: str, table: Mapping[str, int]) -> int | None:
    if name in table:
        return table[name]
    best = max(
        (e for e in table if name.startswith(e) and name[len(e) : len(e) + 1] in _SEPARATORS),
        key=len,
        default=None,
    )
    return None if best is None else table[best]
