"""Traffic with canary PII through the proxy, then every export format: no original anywhere, every line valid."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from dataset.cli import main as dataset_main
from dataset.formats import FORMATS, problems
from plugins._capture.store import CaptureStore
from tests.capture.helpers import CARD, EMAIL, IBAN, PROMPT, THREAD, assert_no_canary, policy, store_bytes
from tests.capture.test_feedback import feedback
from tests.conftest import MockUpstream, ProxyFactory


async def test_exports_of_captured_traffic_hold_no_original_pii(
    start_proxy: ProxyFactory, mock_upstream: MockUpstream, write_policy: Callable[[str], Path], tmp_path: Path
) -> None:
    proxy = await start_proxy(write_policy(policy(mock_upstream.url, f"[pii, {THREAD}]")))
    async with proxy.client("sk-app1") as client:
        raw = await client.chat.completions.with_raw_response.create(
            model="mock-gpt", messages=[{"role": "system", "content": f"Account {IBAN}."},
                                        {"role": "user", "content": PROMPT}])  # fmt: skip
        stream = await client.chat.completions.create(
            model="mock-gpt",
            messages=[{"role": "user", "content": f"Stream it back: {EMAIL} and {CARD}"}],
            stream=True,
        )
        assert EMAIL in "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        answer = await client.responses.create(model="mock-gpt", input=f"Responses API, mail {EMAIL} please")
        assert EMAIL in answer.output_text
    status, _ = await feedback(proxy, "sk-app1", {"request_id": raw.headers["x-request-id"],
                                                  "correction": f"Write to {EMAIL}, IBAN {IBAN}."})  # fmt: skip
    assert status == 200
    plugin = next(p for p in proxy.runtime.in_force().policy.plugins if getattr(p, "name", "") == "capture")
    path = plugin.path
    await proxy.runner.cleanup()
    rows = {r["endpoint"]: r for r in CaptureStore(path, readonly=True).rows()}
    assert "<EMAIL_ADDRESS_1>" in rows["responses"]["answer"]["content"]
    assert rows["responses"]["request"]["input"].endswith("mail <EMAIL_ADDRESS_1> please")
    out = tmp_path / "exports"
    for fmt in FORMATS:
        target = out / f"{fmt}.jsonl"
        assert dataset_main(["export", "--store", str(path), "--format", fmt, "--out", str(target),
                             "--val-fraction", "0.3", "--strict"]) == 0  # fmt: skip
        lines = [line for f in (target, out / f"{fmt}.val.jsonl") for line in f.read_text().splitlines()]
        assert len(lines) == (1 if fmt in ("openai-dpo", "trl") else 3), fmt  # the demonstration pair; 3 answers
        assert all(problems(fmt, json.loads(line)) == [] for line in lines)
    exported = b"".join(f.read_bytes() for f in sorted(out.iterdir()))
    assert b"<EMAIL_ADDRESS_1>" in exported and b"<IBAN_CODE_1>" in exported
    assert_no_canary(exported)
    assert_no_canary(store_bytes(tmp_path / "home"))
