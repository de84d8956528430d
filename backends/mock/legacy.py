"""``POST /v1/completions``: the legacy text-completion endpoint, streamed or not.

[evals] ``echo: true`` puts the prompt before the answer; with ``logprobs`` set too, every piece gets a
deterministic log-probability (``echo_logprobs``), so a perplexity scorer has prompt logprobs to read.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from .calls import int_param, json_response, open_call, read_json, require_model, usage
from .content import Answer, count_tokens, fit_pieces, limit_answer, reply_text, split_pieces
from .errors import invalid_request
from .sse import ChunkTemplate, dumps, finish_json, send_stream

DEFAULT_MAX_TOKENS = 16  # the legacy endpoint's default, as on api.openai.com
MAX_CHOICES = 128


async def completions(request: web.Request) -> web.StreamResponse:
    """Answer ``" Mock completion of: <prompt words>"`` for each prompt, ``n`` times."""
    body = await read_json(request)
    model = require_model(body)
    prompts = _prompts(body)
    n = int_param(body, "n", 1, 1, MAX_CHOICES) or 1
    limit = int_param(body, "max_tokens", DEFAULT_MAX_TOKENS, 1, 1 << 31)
    texts = [p for p in prompts if isinstance(p, str)]
    call = open_call(request, body, texts, "prompt")
    answers = [_answer(prompt, call.fault.tokens, limit) for prompt in prompts]
    await call.enter()
    if call.fault.drop_after is not None and not call.stream:
        return call.drop()
    prompt_tokens = sum(count_tokens(p) if isinstance(p, str) else len(p) for p in prompts)
    totals = usage(prompt_tokens, n * sum(len(a.pieces) for a in answers), details=False)
    completion_id = call.state.new_id("cmpl-")
    created = int(time.time())
    choices = [(index * n + copy, answer) for index, answer in enumerate(answers) for copy in range(n)]
    if call.stream:
        template = ChunkTemplate(
            id_=completion_id,
            object_="text_completion",
            created=created,
            model=model,
            include_usage=call.include_usage,
        )
        return await send_stream(call, _events(template, choices, totals if call.include_usage else None))
    return json_response(
        {
            "id": completion_id,
            "object": "text_completion",
            "created": created,
            "model": model,
            "system_fingerprint": "fp_mock",
            "choices": [_choice(body, prompts[i // n], a, i) for i, a in choices],
            "usage": totals,
        }
    )


def _choice(body: dict[str, Any], prompt: str | list[int], answer: Answer, index: int) -> dict[str, Any]:
    choice = {"text": answer.text, "index": index, "logprobs": None, "finish_reason": answer.finish_reason}
    if body.get("echo") is True and isinstance(prompt, str):  # [evals] echo the prompt, with prompt logprobs
        choice["text"] = prompt + answer.text
        if isinstance(body.get("logprobs"), int):
            choice["logprobs"] = echo_logprobs(prompt + answer.text)
    return choice


def echo_logprobs(text: str) -> dict[str, Any]:
    """[evals] Legacy ``logprobs`` for every piece of ``text``: null for the first (as OpenAI does), then
    -0.1 for a word already seen earlier in the text (copied from the prompt), -2.0 for a new one."""
    tokens, offsets, values, seen, at = [], [], [], set(), 0
    for piece in split_pieces(text):
        word = piece.strip().lower()
        tokens.append(piece)
        offsets.append(at)
        values.append(None if at == 0 else (-0.1 if word in seen else -2.0))
        seen.add(word)
        at += len(piece)
    return {"tokens": tokens, "token_logprobs": values, "text_offset": offsets, "top_logprobs": None}


def _prompts(body: dict[str, Any]) -> list[str | list[int]]:
    """Normalise ``prompt``: a string, a list of strings, a token array, or a list of token arrays."""
    prompt = body.get("prompt")
    if prompt is None:
        raise invalid_request("Missing required parameter: 'prompt'.", "prompt", "missing_required_parameter")
    if isinstance(prompt, str):
        return [prompt]
    if isinstance(prompt, list) and prompt:
        if all(_is_token(t) for t in prompt):
            return [prompt]
        if all(isinstance(p, str) or (isinstance(p, list) and all(_is_token(t) for t in p)) for p in prompt):
            return list(prompt)
    raise invalid_request("Invalid 'prompt': expected a string, an array of strings or token arrays.", "prompt")


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _answer(prompt: str | list[int], tokens: int | None, limit: int | None) -> Answer:
    text = reply_text(prompt if isinstance(prompt, str) else "", " Mock completion of:")
    return limit_answer(Answer(fit_pieces(split_pieces(text), tokens), "stop"), limit)


def _events(template: ChunkTemplate, choices: list[tuple[int, Answer]], totals: dict[str, Any] | None) -> list[bytes]:
    events: list[bytes] = []
    for index, answer in choices:
        events.extend(template.chunk(_chunk_choice(index, dumps(p), None)) for p in answer.pieces)
        events.append(template.chunk(_chunk_choice(index, '""', answer.finish_reason)))
    if totals is not None:
        events.append(template.usage_chunk(totals))
    return events


def _chunk_choice(index: int, text_json: str, finish_reason: str | None) -> str:
    return f'{{"text":{text_json},"index":{index},"logprobs":null,"finish_reason":{finish_json(finish_reason)}}}'
