"""Perplexity of the reference answer, from the prompt log-probabilities a backend returns.

Chat completions only return log-probabilities of tokens the model *generates*, so they cannot
score a given reference. This scorer uses the legacy ``/v1/completions`` endpoint with ``echo: true``,
``logprobs: 0`` and ``max_tokens: 1``: backends that support it (vLLM, llama.cpp's server, TGI's
OpenAI layer) return the log-probability of every *prompt* token. The prompt is the row's messages
rendered as plain ``role: content`` lines followed by ``assistant:``, a space and the reference — not the
model's own chat template, which the API does not expose — so the figure is comparable between runs
and models on the same data, not with numbers computed elsewhere.

The reference's tokens are those whose ``text_offset`` falls at or after the reference's first
character and before the end of the prompt (the one generated token is excluded); perplexity is
``exp(-mean(logprob))`` over them. When the answer has no prompt log-probabilities (OpenAI's hosted
models, the bundled mock), the scorer yields None with a note: not applicable, never a made-up number.
Lower is better, so a ``perplexity=V`` cutoff is a maximum.
"""

from __future__ import annotations

import math
from typing import Any

from evals.data import Row, content_text


def render(row: Row) -> tuple[str, str]:
    """(prefix, prompt): the rendered conversation before the reference, and with it."""
    lines = [f"{m.get('role')}: {content_text(m.get('content'))}" for m in row.messages]
    prefix = "\n".join(lines) + "\nassistant:"  # the space goes with the reference's first token (" The")
    return prefix, f"{prefix} {row.expected or ''}"


def request(model: str, row: Row) -> dict[str, Any]:
    return {"model": model, "prompt": render(row)[1], "echo": True, "logprobs": 0, "max_tokens": 1, "temperature": 0}


def from_response(response: dict[str, Any], prefix_chars: int, prompt_chars: int) -> float | None:
    """Perplexity of the characters ``[prefix_chars, prompt_chars)`` from an echo+logprobs answer."""
    choices = response.get("choices") or []
    logprobs = choices[0].get("logprobs") if choices else None
    if not isinstance(logprobs, dict):
        return None
    values, offsets = logprobs.get("token_logprobs"), logprobs.get("text_offset")
    if not isinstance(values, list) or not isinstance(offsets, list) or len(values) != len(offsets):
        return None
    picked = [
        float(v) for v, at in zip(values, offsets, strict=True)
        if isinstance(v, int | float) and isinstance(at, int) and prefix_chars <= at < prompt_chars
    ]  # fmt: skip
    if not picked:
        return None
    return round(math.exp(-sum(picked) / len(picked)), 6)
