"""Typed engine options → the exact command line (argv and environment) that starts one engine replica.

Native engines run as a process (`vllm serve MODEL …`, `text-generation-launcher --model-id …`,
`python -m llama_cpp.server --model FILE …`); vLLM and TGI can instead run in a container
(`docker run --gpus … IMAGE …` / `podman run --device nvidia.com/gpu=… IMAGE …`) built from the same
options: the image, the model cache mounted where the engine looks, the port published on the
engine's host address, the GPU selection and the environment. No I/O happens here except resolving
a GGUF file inside an installed package, so every line can be checked in a test and printed by
``chaperone launch --dry-run``.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from proxy.launchconfig import ContainerConfig, EngineConfig, LlamaCppLaunch, TgiLaunch, VllmLaunch

__all__ = ["DEFAULT_IMAGES", "Command", "build_command"]

DEFAULT_IMAGES = {
    "vllm": "vllm/vllm-openai:latest",
    "tgi": "ghcr.io/huggingface/text-generation-inference:latest",
}
# Where each official image listens and keeps its model cache.
_CONTAINER_PORT = {"vllm": 8000, "tgi": 80}
_CONTAINER_CACHE = {"vllm": "/root/.cache/huggingface", "tgi": "/data"}
_SECRET_FLAGS = frozenset({"--api-key", "--api_key"})


@dataclass(frozen=True, slots=True)
class Command:
    """One replica's command: what to run, with which extra environment, reachable where."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 0
    container: str | None = None  # the container's name, for `docker rm -f` after a stop
    runtime: str | None = None  # docker or podman, when containerized
    secrets: tuple[str, ...] = ()

    @property
    def root_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://[{host}]:{self.port}" if ":" in host else f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.root_url + "/v1"

    def shown(self) -> str:
        """The command as a shell line (environment first), with secrets replaced by ``***``."""
        env = [f"{k}={shlex.quote(self._redact(v))}" for k, v in sorted(self.env.items())]
        return " ".join([*env, *(shlex.quote(self._redact(a)) for a in self.argv)])

    def shown_argv(self) -> str:
        """[console2] The command line alone (no environment values), with secrets replaced by ``***``."""
        return " ".join(shlex.quote(self._redact(a)) for a in self.argv)

    def _redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def build_command(config: EngineConfig, *, port: int, replica: int = 0, name: str = "engine") -> Command:
    """The command for replica ``replica`` of ``config``, listening on ``port``; ``name`` labels containers."""
    if isinstance(config, VllmLaunch):
        args, env = _vllm_args(config, replica)
    elif isinstance(config, TgiLaunch):
        args, env = _tgi_args(config, replica)
    else:
        return _llamacpp(config, port)
    secrets = (config.api_key,) if config.api_key else ()
    env.update(config.env)
    if config.container is None:
        program = config.executable or ("vllm" if config.engine == "vllm" else "text-generation-launcher")
        lead = [program, "serve", config.model] if config.engine == "vllm" else [program, "--model-id", config.model]
        argv = [*lead, *args, *_listen(config.engine, config.host, port), *config.extra_args]
        return Command(tuple(argv), env, config.host, port, secrets=secrets)
    return _containerized(config, config.container, args, env, port, replica, name, secrets)


def _listen(engine: str, host: str, port: int) -> list[str]:
    if engine == "tgi":
        return ["--hostname", host, "--port", str(port)]
    return ["--host", host, "--port", str(port)]


def _vllm_args(config: VllmLaunch, replica: int) -> tuple[list[str], dict[str, str]]:
    args: list[str] = []
    if config.served_model_name:
        args += ["--served-model-name", *config.served_model_name]
    for flag, value in (
        ("--tensor-parallel-size", config.tensor_parallel_size),
        ("--pipeline-parallel-size", config.pipeline_parallel_size),
        ("--quantization", config.quantization),
        ("--dtype", config.dtype),
        ("--max-model-len", config.max_model_len),
        ("--gpu-memory-utilization", config.gpu_memory_utilization),
        ("--download-dir", config.download_dir),
    ):
        if value is not None:
            args += [flag, str(value)]
    if config.enable_prefix_caching is not None:
        args.append("--enable-prefix-caching" if config.enable_prefix_caching else "--no-enable-prefix-caching")
    env: dict[str, str] = {}
    if config.lora:
        args.append("--enable-lora")
        if config.lora_modules:
            args += ["--lora-modules", *(f"{n}={p}" for n, p in config.lora_modules.items())]
        if config.max_loras is not None:
            args += ["--max-loras", str(config.max_loras)]
        if config.max_lora_rank is not None:
            args += ["--max-lora-rank", str(config.max_lora_rank)]
        env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"  # vLLM refuses /v1/load_lora_adapter without it
    if config.api_key:
        args += ["--api-key", config.api_key]
    if config.gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = config.gpus[replica]
    return args, env


def _tgi_args(config: TgiLaunch, replica: int) -> tuple[list[str], dict[str, str]]:
    args: list[str] = []
    for flag, value in (
        ("--revision", config.revision),
        ("--num-shard", config.num_shard),
        ("--quantize", config.quantize),
        ("--dtype", config.dtype),
        ("--max-input-tokens", config.max_input_tokens),
        ("--max-total-tokens", config.max_total_tokens),
        ("--max-batch-prefill-tokens", config.max_batch_prefill_tokens),
        ("--max-concurrent-requests", config.max_concurrent_requests),
    ):
        if value is not None:
            args += [flag, str(value)]
    if config.lora_adapters:
        args += ["--lora-adapters", ",".join(config.lora_adapters)]
    if config.api_key:
        args += ["--api-key", config.api_key]
    env = {"CUDA_VISIBLE_DEVICES": config.gpus[replica]} if config.gpus is not None else {}
    return args, env


def _llamacpp(config: LlamaCppLaunch, port: int) -> Command:
    lead = [config.executable] if config.executable else [sys.executable, "-m", "llama_cpp.server"]
    argv = [*lead, "--model", str(config.model_path()), "--model_alias", config.names[0]]
    argv += ["--n_ctx", str(config.n_ctx), "--host", config.host, "--port", str(port)]
    for flag, value in (
        ("--n_threads", config.n_threads),
        ("--n_gpu_layers", config.n_gpu_layers),
        ("--chat_format", config.chat_format),
        ("--api_key", config.api_key),
    ):
        if value is not None:
            argv += [flag, str(value)]
    argv += config.extra_args
    secrets = (config.api_key,) if config.api_key else ()
    return Command(tuple(argv), dict(config.env), config.host, port, secrets=secrets)


def _containerized(
    config: VllmLaunch | TgiLaunch,
    container: ContainerConfig,
    args: list[str],
    env: dict[str, str],
    port: int,
    replica: int,
    name: str,
    secrets: tuple[str, ...],
) -> Command:
    """``docker|podman run`` of the engine's image, publishing its port on ``config.host:port`` only."""
    engine = config.engine
    inner = _CONTAINER_PORT[engine]
    cname = f"chaperone-{name}-{replica}-{port}"
    run = [container.runtime, "run", "--rm", "--name", cname, "-p", f"{config.host}:{port}:{inner}"]
    run += _gpu_flags(container, config.gpus[replica] if config.gpus is not None else None)
    if container.shm_size:
        run += ["--shm-size", container.shm_size]
    if engine == "vllm":
        run.append("--ipc=host")  # vLLM's tensor-parallel workers share memory through /dev/shm
    if container.cache_dir:
        run += ["-v", f"{Path(container.cache_dir).expanduser()}:{_CONTAINER_CACHE[engine]}"]
    model = config.model
    if model.startswith(("/", "./", "~")):  # a local model: mount it read-only where the engine will look
        host_path = Path(model).expanduser().resolve()
        model = f"/models/{host_path.name}"
        run += ["-v", f"{host_path}:{model}:ro"]
    for volume in container.volumes:
        run += ["-v", volume]
    inside_env = {k: v for k, v in env.items() if k != "CUDA_VISIBLE_DEVICES"}  # --gpus selects the devices
    for key, value in sorted(inside_env.items()):
        run += ["-e", f"{key}={value}"]
    run += container.extra_args
    run.append(container.image or DEFAULT_IMAGES[engine])
    lead = ["--model", model] if engine == "vllm" else ["--model-id", model]
    run += [*lead, *args, "--port", str(inner), *config.extra_args]
    return Command(tuple(run), {}, config.host, port, container=cname, runtime=container.runtime, secrets=secrets)


def _gpu_flags(container: ContainerConfig, devices: str | None) -> list[str]:
    if devices is None and container.gpus is None:
        return []
    if container.runtime == "podman":  # podman selects GPUs through CDI device names
        ids = devices.split(",") if devices else ["all"] if container.gpus == "all" else [container.gpus or "all"]
        return [arg for i in ids for arg in ("--device", f"nvidia.com/gpu={i.strip()}")]
    if devices is not None:
        return ["--gpus", f'"device={devices}"']  # docker's documented quoting for a device list
    return ["--gpus", container.gpus or "all"]
