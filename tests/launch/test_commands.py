"""Typed launch options → exact vLLM / TGI / llama.cpp command lines, native and containerized.

Each line is also parsed by the STAND-IN engines' argument parsers (tests/launch/standins/standin.py),
which declare the flags vLLM's `vllm serve`, TGI's `text-generation-launcher` and `docker run`
document (checked against their docs: vLLM engine arguments, TGI launcher arguments), so a flag
spelled wrong or given a bad value fails here as it would fail the real program.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter, ValidationError

from backends.launch.commands import build_command
from proxy.launchconfig import EngineConfig
from proxy.policy import PolicyError, compile_policy_text
from proxy.registry import PluginRegistry

sys.path.insert(0, str(Path(__file__).parent / "standins"))
import standin  # the stand-ins' flag parsers

ENGINE = TypeAdapter(EngineConfig)


def command(options: dict[str, Any], port: int = 8001, replica: int = 0) -> tuple[list[str], dict[str, str]]:
    built = build_command(ENGINE.validate_python(options), port=port, replica=replica, name="gpu")
    return list(built.argv), built.env


def parsed_vllm(argv: list[str]) -> argparse.Namespace:
    assert argv[:2] == ["vllm", "serve"], argv
    return standin.vllm_parser(True).parse_args(argv[2:])


def parsed_tgi(argv: list[str]) -> argparse.Namespace:
    assert argv[0] == "text-generation-launcher", argv
    return standin.tgi_parser().parse_args(argv[1:])


LLAMA = "meta-llama/Llama-3.1-8B-Instruct"
VLLM_MATRIX = [
    ({}, {"tensor_parallel_size": None, "quantization": None, "enable_prefix_caching": None}),
    (
        {"tensor_parallel_size": 4, "pipeline_parallel_size": 2},
        {"tensor_parallel_size": 4, "pipeline_parallel_size": 2},
    ),
    ({"quantization": "awq", "dtype": "half"}, {"quantization": "awq", "dtype": "half"}),
    ({"quantization": "gptq"}, {"quantization": "gptq"}),
    ({"quantization": "fp8", "max_model_len": 32768}, {"quantization": "fp8", "max_model_len": 32768}),
    ({"quantization": "bitsandbytes"}, {"quantization": "bitsandbytes"}),
    ({"gpu_memory_utilization": 0.85}, {"gpu_memory_utilization": 0.85}),
    ({"enable_prefix_caching": True}, {"enable_prefix_caching": True}),
    ({"enable_prefix_caching": False}, {"enable_prefix_caching": False}),
    ({"served_model_name": ["llama", "llama-8b"]}, {"served_model_name": ["llama", "llama-8b"]}),
    (
        {"lora_modules": {"sql": "/adapters/sql", "chat": "/adapters/chat"}, "max_loras": 4, "max_lora_rank": 64},
        {"enable_lora": True, "lora_modules": ["sql=/adapters/sql", "chat=/adapters/chat"], "max_loras": 4},
    ),
    ({"api_key": "k-123"}, {"api_key": "k-123"}),
    ({"download_dir": "/models"}, {"download_dir": "/models"}),
]


@pytest.mark.parametrize(("options", "expected"), VLLM_MATRIX)
def test_vllm_options_become_the_documented_flags(options: dict[str, Any], expected: dict[str, Any]) -> None:
    argv, _ = command({"engine": "vllm", "model": LLAMA, **options})
    ns = parsed_vllm(argv)
    assert ns.model == LLAMA
    assert (ns.host, ns.port) == ("127.0.0.1", 8001)
    for key, value in expected.items():
        assert getattr(ns, key) == value, (key, argv)


def test_a_vllm_line_is_exact_and_extra_args_come_last() -> None:
    argv, env = command({
        "engine": "vllm", "model": LLAMA, "tensor_parallel_size": 2, "quantization": "awq", "max_model_len": 8192,
        "enable_prefix_caching": True, "served_model_name": ["llama"], "extra_args": ["--enforce-eager"],
    })  # fmt: skip
    assert argv == [
        "vllm", "serve", LLAMA, "--served-model-name", "llama", "--tensor-parallel-size", "2", "--quantization", "awq",
        "--max-model-len", "8192", "--enable-prefix-caching", "--host", "127.0.0.1", "--port", "8001",
        "--enforce-eager",
    ]  # fmt: skip
    assert env == {}


def test_gpus_are_chosen_per_replica_and_runtime_adapters_are_allowed() -> None:
    options = {"engine": "vllm", "model": LLAMA, "replicas": 2, "gpus": ["0,1", "2,3"], "tensor_parallel_size": 2,
               "adapters": {"sql": "/a/sql"}}  # fmt: skip
    _, env0 = command(options, replica=0)
    argv1, env1 = command(options, replica=1)
    assert env0["CUDA_VISIBLE_DEVICES"] == "0,1" and env1["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert env1["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"  # else vLLM refuses /v1/load_lora_adapter
    assert parsed_vllm(argv1).enable_lora and "--lora-modules" not in argv1  # loaded later, on first use
    _, plain = command({"engine": "vllm", "model": LLAMA})
    assert "VLLM_ALLOW_RUNTIME_LORA_UPDATING" not in plain


def test_a_gguf_file_is_served_with_gguf_quantization() -> None:
    ns = parsed_vllm(command({"engine": "vllm", "model": "/m/llama-q4.gguf", "quantization": "gguf"})[0])
    assert (ns.model, ns.quantization) == ("/m/llama-q4.gguf", "gguf")
    with pytest.raises(ValidationError, match=r"gguf needs model to be a \.gguf file"):
        ENGINE.validate_python({"engine": "vllm", "model": LLAMA, "quantization": "gguf"})


TGI_MATRIX = [
    ({"num_shard": 2}, {"num_shard": 2}),
    ({"quantize": "awq"}, {"quantize": "awq"}),
    ({"quantize": "bitsandbytes-nf4"}, {"quantize": "bitsandbytes-nf4"}),
    ({"quantize": "fp8", "dtype": "bfloat16"}, {"quantize": "fp8", "dtype": "bfloat16"}),
    ({"max_input_tokens": 4000, "max_total_tokens": 8192}, {"max_input_tokens": 4000, "max_total_tokens": 8192}),
    ({"max_batch_prefill_tokens": 4096, "max_concurrent_requests": 64},
     {"max_batch_prefill_tokens": 4096, "max_concurrent_requests": 64}),
    ({"revision": "refs/pr/2"}, {"revision": "refs/pr/2"}),
    ({"lora_adapters": ["a/sql", "b/chat"]}, {"lora_adapters": "a/sql,b/chat"}),
    ({"api_key": "k"}, {"api_key": "k"}),
]  # fmt: skip


@pytest.mark.parametrize(("options", "expected"), TGI_MATRIX)
def test_tgi_options_become_the_documented_flags(options: dict[str, Any], expected: dict[str, Any]) -> None:
    argv, _ = command({"engine": "tgi", "model": "mistralai/Mistral-7B-Instruct-v0.3", **options}, port=8002)
    ns = parsed_tgi(argv)
    assert (ns.model_id, ns.hostname, ns.port) == ("mistralai/Mistral-7B-Instruct-v0.3", "127.0.0.1", 8002)
    for key, value in expected.items():
        assert getattr(ns, key) == value, (key, argv)


def test_tgi_token_limits_are_checked_together() -> None:
    with pytest.raises(ValidationError, match="max_input_tokens must be less than max_total_tokens"):
        ENGINE.validate_python({"engine": "tgi", "model": "m", "max_input_tokens": 9000, "max_total_tokens": 8000})


def test_vllm_in_docker_publishes_on_loopback_mounts_the_cache_and_picks_gpus(tmp_path: Path) -> None:
    container = {"runtime": "docker", "cache_dir": str(tmp_path), "volumes": ["/data:/data:ro"]}
    options = {"engine": "vllm", "model": LLAMA, "gpus": ["1,2"], "tensor_parallel_size": 2, "env": {"HF_TOKEN": "t"},
               "container": container}  # fmt: skip
    argv, env = command(options)
    assert argv[:2] == ["docker", "run"] and env == {}
    run = standin.docker_parser().parse_args(argv[2:])
    assert run.rm and run.name.startswith("chaperone-gpu-0-")
    assert run.publish == ["127.0.0.1:8001:8000"]
    assert run.gpus == '"device=1,2"' and run.ipc == "host" and run.shm_size == "1g"
    assert run.volumes == [f"{tmp_path}:/root/.cache/huggingface", "/data:/data:ro"]
    assert run.env == ["HF_TOKEN=t"]
    assert run.image == "vllm/vllm-openai:latest"
    inner = standin.vllm_parser(False).parse_args(run.args)
    assert (inner.model, inner.port, inner.tensor_parallel_size) == (LLAMA, 8000, 2)


def test_tgi_in_podman_uses_cdi_devices_and_mounts_a_local_model(tmp_path: Path) -> None:
    model = tmp_path / "mistral"
    model.mkdir()
    argv, _ = command({"engine": "tgi", "model": str(model), "num_shard": 1,
                       "container": {"runtime": "podman", "image": "tgi:3.0", "cache_dir": None}})  # fmt: skip
    run = standin.docker_parser().parse_args(argv[2:])
    assert argv[0] == "podman" and run.device == ["nvidia.com/gpu=all"] and run.gpus is None
    assert run.volumes == [f"{model}:/models/mistral:ro"] and run.image == "tgi:3.0"
    inner = standin.tgi_parser().parse_args(run.args)
    assert (inner.model_id, inner.port, inner.num_shard) == ("/models/mistral", 80, 1)


def test_llamacpp_serves_a_gguf_from_an_installed_package(tmp_path: Path) -> None:
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF")
    built = build_command(
        ENGINE.validate_python({"engine": "llamacpp", "model": str(gguf), "n_ctx": 1024, "n_threads": 2,
                                "api_key": "sekret"}), port=9000)  # fmt: skip
    assert list(built.argv) == [
        sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--model_alias", "tiny", "--n_ctx", "1024",
        "--host", "127.0.0.1", "--port", "9000", "--n_threads", "2", "--api_key", "sekret",
    ]  # fmt: skip
    assert "sekret" not in built.shown() and "--api_key '***'" in built.shown()
    packaged = ENGINE.validate_python(
        {"engine": "llamacpp", "model": "x.gguf", "model_package": "no_such_pkg_here", "executable": "llama-srv"}
    )
    assert "no_such_pkg_here" in (packaged.missing() or "")


def test_chaperone_launch_dry_run_prints_each_replica(capsys: pytest.CaptureFixture[str]) -> None:
    from proxy.cli import main

    code = main(["launch", "vllm", LLAMA, "--replicas", "2", "--gpus", "0", "--gpus", "1", "--port", "8100",
                 "--quantization", "awq", "--lora-modules", "sql=/a/sql", "--api-key", "hidden",
                 "--dry-run"])  # fmt: skip
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 2
    assert lines[0].startswith(
        "CUDA_VISIBLE_DEVICES=0 VLLM_ALLOW_RUNTIME_LORA_UPDATING=True vllm serve meta-llama/Llama-3.1-8B-Instruct "
        "--quantization awq"
    )
    assert "--port 8100" in lines[0] and "--port 8101" in lines[1] and "CUDA_VISIBLE_DEVICES=1" in lines[1]
    assert "--lora-modules sql=/a/sql" in lines[0] and "hidden" not in lines[0]


def test_chaperone_launch_names_a_bad_option(capsys: pytest.CaptureFixture[str]) -> None:
    from proxy.cli import main

    assert main(["launch", "vllm", LLAMA, "--gpu-memory-utilization", "1.5", "--dry-run"]) == 2
    assert "--gpu-memory-utilization: Input should be less than or equal to 1" in capsys.readouterr().err


def test_a_bad_launch_block_is_reported_with_its_yaml_path(registry: PluginRegistry) -> None:
    text = """
    backends:
      gpu:
        launch: {engine: vllm, model: m, replicas: 2, gpus: ["0"]}
    models:
      "*": {backend: gpu}
    """
    with pytest.raises(PolicyError) as info:
        compile_policy_text(text.replace("\n    ", "\n"), registry)
    assert info.value.errors == ["backends.gpu.launch.vllm: gpus gives 1 entries for 2 replicas (one per replica)"]
    with pytest.raises(PolicyError) as info:
        both = "backends: {b: {url: 'http://x/v1', launch: {engine: tgi, model: m}}}\nmodels: {}"
        compile_policy_text(both, registry)
    assert "give exactly one of 'url', 'urls', 'builtin' and 'launch'" in info.value.errors[0]
