"""A retry of the same request goes to a replica it has not tried (real sockets, no retry plugin needed)."""

from __future__ import annotations

import textwrap

import pytest

from backends.mock import MockConfig
from backends.pool import ReplicaPool
from proxy.errors import UpstreamError
from proxy.policy import compile_policy_text
from proxy.registry import PluginRegistry
from tests.balance.conftest import Replicas, chat_count
from tests.chain_helpers import closed_port_url, make_exchange


async def test_the_second_attempt_avoids_the_replica_that_failed(replicas: Replicas, registry: PluginRegistry) -> None:
    (live,) = await replicas(MockConfig())
    dead = closed_port_url()
    text = textwrap.dedent(f"""
    backends:
      pool: {{urls: ["{live.url}", "{dead}"], balance: {{strategy: weighted, weights: [1, 100]}}}}
    models:
      "*": {{backend: pool}}
    chains: {{default: []}}
    """)
    policy = compile_policy_text(text, registry, env={})
    pool = ReplicaPool("pool", policy.backends["pool"], [live.url, dead])
    await pool.start()
    try:
        exchange = make_exchange(policy)
        with pytest.raises(UpstreamError):
            await pool.send(exchange)  # the heavy replica first: refused
        answer = await pool.send(exchange)  # the weights say "dead" again; the request has tried it
        assert answer.status == 200 and answer.raw
        assert [a.error for a in exchange.attempts] == ["upstream_unreachable", None]
        other = make_exchange(policy)
        with pytest.raises(UpstreamError):
            await pool.send(other)  # a new request starts from the weights again
        assert await chat_count(live) == 1
    finally:
        await pool.close()
