"""The mock backend's other endpoints (embeddings, models, completions, moderations), errors and introspection."""

from __future__ import annotations

import base64
import math
import struct

import openai
import pytest

from .conftest import MockServer


def _norm(vector: list[float]) -> float:
    return math.sqrt(sum(x * x for x in vector))


async def test_embeddings_via_sdk_base64_default(mock_server: MockServer, client: openai.AsyncOpenAI) -> None:
    first = await client.embeddings.create(model="mock-embed", input=["alpha", "beta"])
    again = await client.embeddings.create(model="mock-embed", input="alpha")
    assert (await mock_server.requests())[0]["body"]["encoding_format"] == "base64"  # the SDK's default
    vectors = [item.embedding for item in first.data]
    assert [len(v) for v in vectors] == [16, 16]
    assert all(abs(_norm(v) - 1.0) < 1e-5 for v in vectors)
    assert vectors[0] != vectors[1]
    assert again.data[0].embedding == vectors[0]
    assert first.model == "mock-embed" and first.usage.prompt_tokens == 2 == first.usage.total_tokens


async def test_embeddings_dimensions_float_and_token_inputs(client: openai.AsyncOpenAI) -> None:
    wide = await client.embeddings.create(model="m", input="alpha", dimensions=64, encoding_format="float")
    assert len(wide.data[0].embedding) == 64 and abs(_norm(wide.data[0].embedding) - 1.0) < 1e-9
    tokens = await client.embeddings.create(model="m", input=[[1, 2, 3], [4]], encoding_format="float")
    assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 4


async def test_embeddings_raw_base64_is_little_endian_float32(mock_server: MockServer) -> None:
    body = {"model": "m", "input": "alpha", "encoding_format": "base64"}
    async with mock_server.http.post(f"{mock_server.base_url}/embeddings", json=body) as response:
        encoded = (await response.json())["data"][0]["embedding"]
    body["encoding_format"] = "float"
    async with mock_server.http.post(f"{mock_server.base_url}/embeddings", json=body) as response:
        floats = (await response.json())["data"][0]["embedding"]
    decoded = struct.unpack("<16f", base64.b64decode(encoded))
    assert decoded == pytest.approx(floats, abs=1e-6)


async def test_models_list_and_retrieve(client: openai.AsyncOpenAI) -> None:
    models = await client.models.list()
    assert [model.id for model in models.data] == ["mock-gpt", "mock-embed"]
    model = await client.models.retrieve("mock-gpt")
    assert model.object == "model" and model.owned_by == "chaperone-mock"
    with pytest.raises(openai.NotFoundError) as caught:
        await client.models.retrieve("nope")
    assert caught.value.code == "model_not_found"


async def test_legacy_completions(client: openai.AsyncOpenAI) -> None:
    completion = await client.completions.create(model="any", prompt=["Say hi", "Say bye"], max_tokens=50)
    assert completion.object == "text_completion"
    texts = [choice.text for choice in completion.choices]
    assert texts == [" Mock completion of: Say hi", " Mock completion of: Say bye"]
    assert completion.usage is not None and completion.usage.prompt_tokens == 4
    assert completion.usage.completion_tokens == 2 * 6
    cut = await client.completions.create(model="any", prompt="go [[mock:tokens=30]]")
    assert cut.choices[0].finish_reason == "length"  # the legacy default max_tokens is 16
    assert cut.usage is not None and cut.usage.completion_tokens == 16


async def test_legacy_completions_stream(client: openai.AsyncOpenAI) -> None:
    reference = await client.completions.create(model="any", prompt="Say hi")
    stream = await client.completions.create(
        model="any", prompt="Say hi", stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].text for c in chunks if c.choices) == reference.choices[0].text
    assert chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and reference.usage is not None
    assert chunks[-1].usage.total_tokens == reference.usage.total_tokens


async def test_moderations(client: openai.AsyncOpenAI) -> None:
    result = await client.moderations.create(input=["fine text", "bad text [[mock:flag]]"])
    assert [r.flagged for r in result.results] == [False, True]
    assert result.results[1].categories.violence is True


async def test_unknown_path_is_an_openai_404(mock_server: MockServer) -> None:
    async with mock_server.http.post(f"{mock_server.base_url}/nope", json={}) as response:
        assert response.status == 404
        error = (await response.json())["error"]
    assert error["code"] == "unknown_url" and error["type"] == "invalid_request_error"
    assert error["message"].startswith("Unknown request URL: POST /v1/nope")
    assert set(error) == {"message", "type", "param", "code"}


async def test_wrong_method_is_an_openai_405(mock_server: MockServer) -> None:
    async with mock_server.http.get(f"{mock_server.base_url}/chat/completions") as response:
        assert response.status == 405
        assert set((await response.json())["error"]) == {"message", "type", "param", "code"}


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"model": "m"}', "messages"),
        (b'{"messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "m", "messages": [{"role": "robot"}]}', "messages[0].role"),
        (b'{"model": "m", "messages": [{"role": "user", "content": "x"}], "n": 0}', "n"),
    ],
)
async def test_bad_requests_are_400(mock_server: MockServer, payload: bytes, param: str | None) -> None:
    url = f"{mock_server.base_url}/chat/completions"
    async with mock_server.http.post(url, data=payload, headers={"Content-Type": "application/json"}) as response:
        assert response.status == 400
        error = (await response.json())["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param
    assert (await mock_server.requests())[-1]["outcome"] == "error"


async def test_request_log_and_clear(mock_server: MockServer, client: openai.AsyncOpenAI) -> None:
    await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"X-Trace": "abc"},
        extra_query={"q": "1"},
    )
    [record] = await mock_server.requests()
    assert record["method"] == "POST" and record["path"] == "/v1/chat/completions" and record["query"] == "q=1"
    assert record["headers"]["x-trace"] == "abc"
    assert record["body"]["messages"][0]["content"] == "hi"
    assert record["outcome"] == "completed"
    async with mock_server.http.delete(f"{mock_server.url}/_mock/requests") as response:
        assert response.status == 204
    assert await mock_server.requests() == []
