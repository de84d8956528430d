"""`chaperone serve` as a user starts it: the embedded default, and a broken policy."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import openai

from tests.conftest import serve_process


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "CHAPERONE_"))}
    env["CHAPERONE_HOME"] = str(tmp_path / "home")
    return env


async def test_serve_runs_the_embedded_default_on_the_bundled_mock(tmp_path: Path) -> None:
    # with the local model off (or llama-cpp-python not installed); tests/launch/test_llamacpp.py runs it on
    async with serve_process(tmp_path / "home", CHAPERONE_LOCAL_MODEL="off") as (proc, url):
        assert url.startswith("http://127.0.0.1:")
        assert proc.stdout is not None
        lines = [await asyncio.wait_for(proc.stdout.readline(), 5)]
        while not lines[-1].startswith(b"  state:"):
            lines.append(await asyncio.wait_for(proc.stdout.readline(), 5))
        banner = b"".join(lines).decode()
        assert "MOCK backend" in banner and "not an LLM" in banner
        assert "running OPEN" in banner
        async with openai.AsyncOpenAI(base_url=url, api_key="anything", max_retries=0) as client:
            answer = await client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}]
            )
        assert "hello there" in (answer.choices[0].message.content or "")
        async with aiohttp.ClientSession() as s, s.get(url.removesuffix("/v1") + "/readyz") as r:
            assert r.status == 200
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 20) == 0


async def test_serve_refuses_a_broken_policy_with_its_yaml_path(tmp_path: Path) -> None:
    policy = tmp_path / "bad.yaml"
    policy.write_text("backends: {a: {url: 'http://127.0.0.1:1/v1'}}\nmodels: {m: {backend: nope}}\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.cli", "serve", "--policy", str(policy), "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(tmp_path),
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"models.m.backend: no backend named 'nope'" in err
    assert b"Traceback" not in err and out == b""


async def test_serve_reports_a_missing_policy_file(tmp_path: Path) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.cli", "serve", "--policy", str(tmp_path / "missing.yaml"), "--port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=_env(tmp_path),
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert b"cannot read the file" in err and b"Traceback" not in err


async def test_a_plugin_module_that_does_not_import_is_a_clear_error(tmp_path: Path) -> None:
    env = {**_env(tmp_path), "CHAPERONE_PLUGINS": "no_such_plugin_module"}
    for command in (("check", "proxy/policies/default.yaml"), ("serve", "--port", "0")):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "proxy.cli", *command,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        _, err = await asyncio.wait_for(proc.communicate(), 20)
        assert proc.returncode == 2, command
        assert b"cannot load plugins: No module named 'no_such_plugin_module'" in err
        assert b"Traceback" not in err
