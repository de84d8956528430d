"""The end of the fine-tuning loop on the mock: eval the candidate against the current model on a
held-out set through the gateway, gate it, compare, move the canary with ``chaperone rollout`` and
see the traffic go to the candidate after the hot reload."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path

from proxy.cli import main as chaperone
from tests.conftest import MockUpstream, ProxyFactory

POLICY = """
backends:
  mock: {{url: "{url}"}}
models:
  chat:                                 # what the apps call
    backend: mock
    model: base-v1
    sticky: user
    split:
      - {{weight: 100, name: current}}
      - {{model: ft-v2, weight: 0, name: candidate}}   # the fine-tuned adapter, no traffic yet
  current: {{backend: mock, model: base-v1}}          # each variant on its own, for the eval
  candidate: {{backend: mock, model: ft-v2}}
chains:
  default: []
"""
HELD_OUT = [
    {"id": f"q{i}", "messages": [{"role": "user", "content": f"question number {i} about colours"}],
     "expected": f"Mock reply to: question number {i} about colours"}
    for i in range(6)
]  # fmt: skip


async def test_gate_compare_then_rollout_moves_the_traffic(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path], tmp_path: Path
) -> None:
    policy = write_policy(POLICY.format(url=mock_upstream.url))
    proxy = await start_proxy(policy)
    data = tmp_path / "held_out.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in HELD_OUT))
    run = tmp_path / "run"
    argv = ["eval", "run", str(data), "--model", "current", "--model", "candidate", "--base-url", proxy.url,
            "--api-key", "sk-test", "--out", str(run), "--cache-dir", str(tmp_path / "cache"),
            "--cutoff", "f1=0.9", "--min-pass-rate", "0.95", "-q"]  # fmt: skip
    assert await asyncio.to_thread(chaperone, argv) == 0  # the gate passes for both
    summary = json.loads((run / "summary.json").read_text())
    assert summary["models"]["candidate"]["pass_rate"] == 1.0
    compare = ["eval", "compare", f"{run}:current", f"{run}:candidate", "--scorer", "f1", "--fail-if-worse"]
    assert await asyncio.to_thread(chaperone, compare) == 0

    async with proxy.client() as client:
        before = await client.chat.completions.with_raw_response.create(
            model="chat", messages=[{"role": "user", "content": "hi"}], user="u1"
        )
        assert before.headers["x-chaperone-variant"] == "current"
        assert await asyncio.to_thread(chaperone, ["rollout", str(policy), "chat", "--promote", "candidate"]) == 0
        assert await proxy.runtime.reload()
        for user in ("u1", "u2", "u3"):
            after = await client.chat.completions.with_raw_response.create(
                model="chat", messages=[{"role": "user", "content": "hi"}], user=user
            )
            assert after.headers["x-chaperone-variant"] == "candidate"
            assert after.parse().model == "ft-v2"
