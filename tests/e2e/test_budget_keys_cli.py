"""`chaperone keys create --limit …`: a virtual key's own rate limits, enforced by the budget plugin."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import openai

from proxy.registry import DEFAULT_PLUGINS, build_registry
from tests.conftest import MockUpstream, ProxyFactory, simple_policy
from tests.e2e.test_keys_cli import keys_cli
from tests.e2e.test_keys_e2e import ADMIN_SECTION

PLUGIN_ENV = {} if "plugins.budget" in DEFAULT_PLUGINS else {"CHAPERONE_PLUGINS": "plugins.budget"}


async def test_keys_create_with_limits(
    start_proxy: ProxyFactory,
    mock_upstream: MockUpstream,
    write_policy: Callable[[str], Path],
    tmp_path: Path,
) -> None:
    registry = build_registry(entry_points=False, modules=tuple(dict.fromkeys((*DEFAULT_PLUGINS, "plugins.budget"))))
    path = write_policy(simple_policy(mock_upstream.url, "[{budget: {}}]", ADMIN_SECTION))
    proxy = await start_proxy(path, registry_=registry)
    home, policy = tmp_path / "home", ("--policy", str(path))
    status, out, err = await keys_cli(
        home, "create", *policy, "--name", "bot", "--limit", "rpm=1", "--json", **PLUGIN_ENV
    )
    assert status == 0, err
    created = json.loads(out)
    assert created["limits"] == {"rpm": 1}
    status, _, err = await keys_cli(home, "create", *policy, "--name", "bad", "--limit", "rpm=lots", **PLUGIN_ENV)
    assert status != 0 and "rpm" in err
    async with proxy.client(api_key=created["key"]) as client:
        await client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hi"}])
        try:
            await client.chat.completions.create(model="mock-gpt", messages=[{"role": "user", "content": "hi"}])
        except openai.RateLimitError as exc:
            assert exc.code == "rate_limit_exceeded"
        else:
            raise AssertionError("the key's rpm of 1 let a second request through")
