"""The params plugin: config checked at load, then defaults, override, clamp and forbid as the upstream sees them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from proxy.policy import PolicyError
from proxy.registry import PluginRegistry
from tests.chain_helpers import compile_chain_policy
from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy

MESSAGES: list[Any] = [{"role": "user", "content": "hello"}]


def load_errors(chain: str, registry: PluginRegistry) -> list[str]:
    with pytest.raises(PolicyError) as info:
        compile_chain_policy(chain, registry)
    return info.value.errors


@pytest.mark.parametrize(
    ("chain", "path", "words"),
    [
        (
            "[{params: {clamp: {stop: {max: 2}}}}]",
            "chains.default[0].params.clamp",
            "'stop' is not a numeric parameter",
        ),
        (
            "[{params: {clamp: {temperature: {min: 1.5, max: 0.5}}}}]",
            "chains.default[0].params.clamp.temperature",
            "min (1.5) is larger than max (0.5)",
        ),
        (
            "[{params: {clamp: {temperature: {min: low}}}}]",
            "chains.default[0].params.clamp.temperature.min",
            "valid number",
        ),
        ("[{params: {clamp: {top_p: {maximum: 1}}}}]", "chains.default[0].params.clamp.top_p.maximum", "Extra inputs"),
        (
            "[{params: {defaults: {temperature: 0.2}, forbid: [temperature]}}]",
            "chains.default[0].params.forbid",
            "'temperature' is both forbidden and given a value",
        ),
        (
            "[headers, {params: {override: {seed: 1}, forbid: [seed, user]}}]",
            "chains.default[1].params.forbid",
            "'seed' is both forbidden",
        ),
        ("[{params: {default: {temperature: 0.2}}}]", "chains.default[0].params.default", "Extra inputs"),
        ("[{params: {defaults: {temperature: [1]}}}]", "chains.default[0].params.defaults.temperature", ""),
    ],
    ids=[
        "clamp-non-numeric",
        "min-above-max",
        "min-not-a-number",
        "range-typo",
        "forbid-and-default",
        "forbid-and-override",
        "key-typo",
        "default-not-scalar",
    ],
)
def test_bad_config_is_rejected_naming_its_yaml_path(
    chain: str, path: str, words: str, registry: PluginRegistry
) -> None:
    errors = load_errors(chain, registry)
    for line in errors:  # a union type reports one line per alternative, each under the same path
        assert line.startswith(path) and line[len(path)] in ".:", line
    assert any(words in line for line in errors), errors


@pytest.mark.parametrize("chain", ["[params]", "[{params: {}}]", "[{params: {clamp: {n: {min: 1, max: 2}}}}]"])
def test_minimal_configs_load(chain: str, registry: PluginRegistry) -> None:
    assert [s.name for s in compile_chain_policy(chain, registry).default_chain.steps] == ["params"]


CHAIN = """[{params: {
    defaults: {temperature: 0.3, max_tokens: 50},
    override: {seed: 7},
    clamp: {max_tokens: {max: 4096}, temperature: {min: 0.2, max: 1.2}},
    forbid: [logit_bias]}}]"""


@pytest.fixture
async def params_proxy(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path]
) -> RunningProxy:
    return await start_proxy(write_policy(simple_policy(mock_upstream.url, chain=" ".join(CHAIN.split()))))


async def upstream_body(mock_upstream: MockUpstream) -> dict[str, Any]:
    body: dict[str, Any] = (await mock_upstream.requests())[-1]["body"]
    return body


async def test_defaults_are_set_when_missing(params_proxy: RunningProxy, mock_upstream: MockUpstream) -> None:
    async with params_proxy.client() as client:
        await client.chat.completions.create(model="mock-gpt", messages=MESSAGES)
    body = await upstream_body(mock_upstream)
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.3, 50, 7)


async def test_client_values_win_over_defaults_but_not_over_override(
    params_proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    async with params_proxy.client() as client:
        await client.chat.completions.create(
            model="mock-gpt", messages=MESSAGES, temperature=0.9, max_tokens=20, seed=1
        )
    body = await upstream_body(mock_upstream)
    assert (body["temperature"], body["max_tokens"], body["seed"]) == (0.9, 20, 7)


async def test_clamp_lowers_and_raises(params_proxy: RunningProxy, mock_upstream: MockUpstream) -> None:
    async with params_proxy.client() as client:
        await client.chat.completions.create(model="mock-gpt", messages=MESSAGES, max_tokens=100000, temperature=1.9)
        high = await upstream_body(mock_upstream)
        await client.chat.completions.create(model="mock-gpt", messages=MESSAGES, temperature=0.05)
        low = await upstream_body(mock_upstream)
    assert high["max_tokens"] == 4096 and type(high["max_tokens"]) is int  # still an integer on the wire
    assert high["temperature"] == 1.2
    assert low["temperature"] == 0.2


async def test_clamp_applies_to_streams_and_legacy_completions(
    params_proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    async with params_proxy.client() as client:
        stream = await client.chat.completions.create(
            model="mock-gpt", messages=MESSAGES, max_tokens=99999, stream=True
        )
        async for _ in stream:
            pass
        streamed = await upstream_body(mock_upstream)
        await client.completions.create(model="mock-gpt", prompt="Once", max_tokens=99999)
        legacy = await upstream_body(mock_upstream)
    assert streamed["max_tokens"] == legacy["max_tokens"] == 4096
    assert legacy["temperature"] == 0.3


async def test_forbidden_parameter_is_refused_before_the_upstream(
    params_proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    async with params_proxy.client() as client:
        with pytest.raises(openai.BadRequestError) as info:
            await client.chat.completions.create(model="mock-gpt", messages=MESSAGES, logit_bias={"50256": -100})
    assert info.value.param == "logit_bias"
    assert info.value.code == "param_forbidden"
    assert info.value.response.headers["x-should-retry"] == "false"
    assert await mock_upstream.requests() == []


async def test_embeddings_get_no_sampling_defaults(params_proxy: RunningProxy, mock_upstream: MockUpstream) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(params_proxy.url + "/embeddings", json={"model": "mock-embed", "input": "hello"}) as r,
    ):
        assert r.status == 200, await r.text()
    assert await upstream_body(mock_upstream) == {"model": "mock-embed", "input": "hello"}
