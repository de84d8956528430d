"""Sub-calls: a plugin asks another route for an answer, through its fallbacks, within the deadline."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import BaseModel, ConfigDict, Field

from proxy import Exchange, StashKey, hookimpl
from proxy.registry import PluginRegistry
from tests.chain_helpers import closed_port_url
from tests.conftest import MockUpstream, ProxyFactory

ANSWER = StashKey[dict[str, Any]]()


class AskConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    model: str = Field(description="The route to ask.")
    timeout_s: float | None = Field(default=None, description="Sub-call limit.")
    prompt: str = Field(default="judge this", description="What to ask.")


class Ask:
    """Asks ``model`` what it thinks of the user's message, and reports the answer in a header."""

    name = "ask"
    Config = AskConfig

    def __init__(self, config: AskConfig) -> None:
        self.config = config

    @hookimpl
    async def on_request(self, exchange: Exchange) -> None:
        body = {"messages": [{"role": "user", "content": self.config.prompt}]}
        answer = await exchange.subcall(self.config.model, body, timeout_s=self.config.timeout_s)
        exchange.stash[ANSWER] = answer

    @hookimpl
    async def on_response(self, exchange: Exchange) -> None:
        assert exchange.response is not None
        answer = exchange.stash[ANSWER]
        exchange.response.headers["x-judge-said"] = answer["choices"][0]["message"]["content"][:40]
        exchange.response.headers["x-subcalls"] = ",".join(
            f"{r.backend}:{r.error or 'ok'}:{r.usage.total_tokens if r.usage else 0}" for r in exchange.subcalls
        )


def policy(upstream: str, dead: str, chain_model: str = "judge") -> str:
    return textwrap.dedent(f"""
    backends:
      mock: {{url: "{upstream}"}}
      dead: {{url: "{dead}", connect_timeout_s: 2}}
    models:
      judge: {{backend: dead, fallback: [judge-2]}}
      judge-2: {{backend: mock, model: judge-upstream}}
      "*": {{backend: mock}}
    chains:
      default: [{{ask: {{model: {chain_model}}}}}]
    """)


@pytest.fixture
def ask_registry(registry: PluginRegistry) -> PluginRegistry:
    registry(Ask)
    return registry


async def test_a_subcall_falls_back_and_its_usage_is_recorded(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path],
    ask_registry: PluginRegistry,
) -> None:  # fmt: skip
    running = await start_proxy(write_policy(policy(mock_upstream.url, closed_port_url())), registry_=ask_registry)
    async with running.client() as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="mock-gpt", messages=[{"role": "user", "content": "the real question"}]
        )
    assert raw.http_response.status_code == 200
    assert "judge this" in raw.headers["x-judge-said"]
    first, second = raw.headers["x-subcalls"].split(",")
    assert first.startswith("dead:upstream_unreachable:")
    assert second.startswith("mock:ok:") and int(second.split(":")[2]) > 0
    log = await mock_upstream.requests()
    sub, main = log[0]["body"], log[1]["body"]
    assert sub["model"] == "judge-upstream" and sub["stream"] is False
    assert sub["messages"] == [{"role": "user", "content": "judge this"}]  # not the client's request, no chain run
    assert main["messages"][0]["content"] == "the real question"


async def test_a_subcall_to_an_unrouted_model_is_a_clear_server_error(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path],
    ask_registry: PluginRegistry,
) -> None:  # fmt: skip
    text = policy(mock_upstream.url, closed_port_url(), chain_model="nowhere").replace('  "*": {backend: mock}\n', "")
    running = await start_proxy(write_policy(text), registry_=ask_registry)
    async with running.client() as client:
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="judge-2", messages=[{"role": "user", "content": "q"}])
    assert "nowhere" in caught.value.message
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "subcall_failed"


async def test_a_subcall_that_times_out_fails_the_request_as_a_504(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path],
    ask_registry: PluginRegistry,
) -> None:  # fmt: skip
    text = policy(mock_upstream.url, closed_port_url()).replace(
        "{ask: {model: judge}}", "{ask: {model: judge-2, timeout_s: 0.2, prompt: '[[mock:hang]]'}}"
    )
    running = await start_proxy(write_policy(text), registry_=ask_registry)
    async with running.client() as client:
        with pytest.raises(Exception) as caught:
            await client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "q"}])
    assert getattr(caught.value, "status_code", None) == 504
