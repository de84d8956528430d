"""``GET /v1/models`` on a policy with a ``*`` route lists what that upstream serves, cached briefly."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from tests.conftest import MockUpstream, ProxyFactory, RunningProxy, simple_policy


async def model_list_calls(upstream: MockUpstream) -> int:
    return sum(1 for entry in await upstream.requests() if entry.get("path") == "/v1/models")


async def test_the_star_route_lists_the_upstreams_models_once_per_cache_period(
    proxy: RunningProxy, mock_upstream: MockUpstream
) -> None:
    async with proxy.client() as client:
        listed = [(m.id, m.owned_by) for m in (await client.models.list()).data]
        assert listed == [
            ("mock-gpt", "chaperone:mock"), ("aliased", "chaperone:mock"), ("mock-embed", "chaperone:mock")
        ]  # fmt: skip  # the named routes, then what the upstream adds ("mock-gpt" only once)
        assert (await client.models.retrieve("mock-embed")).id == "mock-embed"
        with pytest.raises(openai.NotFoundError):
            await client.models.retrieve("not-served-anywhere")
        await client.models.list()
    assert await model_list_calls(mock_upstream) == 1  # one upstream call for all of the above (cached)


async def test_an_upstream_that_cannot_list_leaves_the_named_models(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path]
) -> None:
    proxy = await start_proxy(write_policy(simple_policy("http://127.0.0.1:9/v1", timeout_s=2)))
    async with proxy.client() as client:
        assert [m.id for m in (await client.models.list()).data] == ["mock-gpt", "aliased"]


async def test_without_a_star_route_only_the_named_models_are_listed(
    start_proxy: ProxyFactory, write_policy: Callable[[str], Path], mock_upstream: MockUpstream
) -> None:
    text = textwrap.dedent(f"""
    backends:
      mock: {{url: "{mock_upstream.url}"}}
    models:
      mine: {{backend: mock}}
    """)
    proxy = await start_proxy(write_policy(text))
    async with proxy.client() as client:
        assert [m.id for m in (await client.models.list()).data] == ["mine"]
    assert await model_list_calls(mock_upstream) == 0
