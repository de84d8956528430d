"""STAND-IN engines for tests: not vLLM, not TGI, not docker — programs that accept their documented flags.

``vllm serve MODEL …``, ``text-generation-launcher --model-id …`` and ``docker run … IMAGE …`` (the
wrappers in this directory) parse their arguments with the flags the real programs document (an
unknown flag exits 2, as the real argument parsers do), then serve Chaperone's mock backend on the
given host and port, plus what an engine adds: ``GET /health``, a Prometheus ``GET /metrics`` with the
engine's own metric names, ``GET /v1/models`` listing the served names and LoRA adapters (with a
``parent``, as vLLM does), ``POST /v1/load_lora_adapter`` (only with
``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``, as vLLM), ``--api-key`` enforcement, and
``GET /_standin`` (its argv, environment, pid and child pid) for the tests.

Knobs for lifecycle tests (environment): ``STANDIN_EXIT=N`` prints an error and exits N at start;
``STANDIN_NEVER_READY=1`` keeps /health at 503; ``STANDIN_IGNORE_TERM=1`` ignores SIGTERM;
``STANDIN_CHILD=1`` starts a child process in its group (for the no-orphans test);
``STANDIN_RUNNING=N`` / ``STANDIN_KV=F`` fix the running-requests and KV-cache figures it exports.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # the checkout, for backends.mock

from aiohttp import web

from backends.mock import MockConfig, create_app


def vllm_parser(with_serve: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vllm serve" if with_serve else "vllm-openai image")
    if with_serve:
        parser.add_argument("model")
    else:
        parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--served-model-name", nargs="+")
    parser.add_argument("--tensor-parallel-size", type=int)
    parser.add_argument("--pipeline-parallel-size", type=int)
    parser.add_argument(
        "--quantization", choices=["awq", "gptq", "fp8", "bitsandbytes", "gguf", "awq_marlin", "gptq_marlin"]
    )
    parser.add_argument("--dtype", choices=["auto", "half", "float16", "bfloat16", "float", "float32"])
    parser.add_argument("--max-model-len", type=int)
    parser.add_argument("--gpu-memory-utilization", type=float)
    parser.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction)
    parser.add_argument("--enable-lora", action="store_true")
    parser.add_argument("--lora-modules", nargs="+", default=[])
    parser.add_argument("--max-loras", type=int)
    parser.add_argument("--max-lora-rank", type=int)
    parser.add_argument("--api-key")
    parser.add_argument("--download-dir")
    return parser


def tgi_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="text-generation-launcher")
    parser.add_argument("--model-id", required=True)
    parser.add_argument("--hostname", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--revision")
    parser.add_argument("--num-shard", type=int)
    parser.add_argument(
        "--quantize",
        choices=[
            "awq",
            "compressed-tensors",
            "eetq",
            "exl2",
            "gptq",
            "marlin",
            "bitsandbytes",
            "bitsandbytes-nf4",
            "bitsandbytes-fp4",
            "fp8",
        ],
    )
    parser.add_argument("--dtype", choices=["float16", "bfloat16"])
    parser.add_argument("--max-input-tokens", type=int)
    parser.add_argument("--max-total-tokens", type=int)
    parser.add_argument("--max-batch-prefill-tokens", type=int)
    parser.add_argument("--max-concurrent-requests", type=int)
    parser.add_argument("--lora-adapters")
    parser.add_argument("--api-key")
    return parser


def docker_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="docker run")
    parser.add_argument("--rm", action="store_true")
    parser.add_argument("--name")
    parser.add_argument("-p", dest="publish", action="append", default=[])
    parser.add_argument("--gpus")
    parser.add_argument("--device", action="append", default=[])
    parser.add_argument("--shm-size")
    parser.add_argument("--ipc")
    parser.add_argument("-v", dest="volumes", action="append", default=[])
    parser.add_argument("-e", dest="env", action="append", default=[])
    parser.add_argument("image")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    return parser


class Engine:
    def __init__(self, kind: str, names: list[str], loras: dict[str, str], api_key: str | None, argv: list[str]):
        self.kind = kind
        self.names = names
        self.loras = loras
        self.api_key = api_key
        self.argv = argv
        self.inflight = 0
        self.child: subprocess.Popen[bytes] | None = None

    def metrics(self) -> str:
        running = int(os.environ.get("STANDIN_RUNNING", self.inflight))
        kv = float(os.environ.get("STANDIN_KV", "0.1"))
        name = self.names[0]
        if self.kind == "tgi":
            return f"# TYPE tgi_batch_current_size gauge\ntgi_batch_current_size {running}\n" \
                   f"# TYPE tgi_queue_size gauge\ntgi_queue_size 0\n"  # fmt: skip
        return (
            "# TYPE vllm:num_requests_running gauge\n"
            f'vllm:num_requests_running{{model_name="{name}"}} {running}\n'
            "# TYPE vllm:num_requests_waiting gauge\n"
            f'vllm:num_requests_waiting{{model_name="{name}"}} 0\n'
            "# TYPE vllm:kv_cache_usage_perc gauge\n"
            f'vllm:kv_cache_usage_perc{{model_name="{name}"}} {kv}\n'
        )

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        path = request.path
        if path == "/health":
            ready = not os.environ.get("STANDIN_NEVER_READY")
            return web.Response(status=200 if ready else 503)
        if path == "/metrics":
            return web.Response(text=self.metrics(), content_type="text/plain")
        if path == "/_standin":
            child = self.child.pid if self.child else None
            return web.json_response({"argv": self.argv, "env": dict(os.environ), "pid": os.getpid(), "child": child})
        authorized = request.headers.get("Authorization") == f"Bearer {self.api_key}"
        if path.startswith("/v1/") and self.api_key and not authorized:
            error = {"message": "Unauthorized", "type": "invalid_request_error"}
            return web.json_response({"error": error}, status=401)
        if path == "/v1/models":
            data = [{"id": n, "object": "model", "owned_by": self.kind, "parent": None} for n in self.names]
            data += [{"id": n, "object": "model", "owned_by": self.kind, "parent": self.names[0], "root": p}
                     for n, p in self.loras.items()]  # fmt: skip
            return web.json_response({"object": "list", "data": data})
        if path == "/v1/load_lora_adapter" and request.method == "POST":
            if os.environ.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "").lower() not in ("true", "1"):
                return web.Response(status=404)
            body = await request.json()
            self.loras[body["lora_name"]] = body["lora_path"]
            return web.Response(text=f"Success: LoRA adapter '{body['lora_name']}' added successfully.")
        if self.kind == "vllm" and request.method == "POST" and path in ("/v1/chat/completions", "/v1/completions"):
            model = (await request.json()).get("model")
            if model not in self.names and model not in self.loras:  # as vLLM: only what it serves
                error = {"message": f"The model `{model}` does not exist.", "type": "NotFoundError", "code": 404}
                return web.json_response({"error": error}, status=404)
        self.inflight += 1
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            self.inflight -= 1


def parse(argv: list[str]) -> tuple[Engine, str, int]:
    kind, rest = argv[0], argv[1:]
    if kind == "docker":
        if rest[:1] == ["rm"]:
            sys.exit(0)
        if rest[:1] != ["run"]:
            sys.exit(f"docker stand-in: only run and rm, got {rest[:1]}")
        run = docker_parser().parse_args(rest[1:])
        host, port, _inner = run.publish[0].rsplit(":", 2)
        for item in run.env:
            key, _, value = item.partition("=")
            os.environ[key] = value
        image_kind = "vllm-image" if "vllm" in run.image else "tgi"
        engine, _, _ = parse([image_kind, *run.args])
        return engine, host, int(port)
    if kind == "vllm":
        if rest[:1] != ["serve"]:
            sys.exit("vllm stand-in: usage: vllm serve MODEL [options]")
        ns = vllm_parser(True).parse_args(rest[1:])
    elif kind == "vllm-image":
        ns = vllm_parser(False).parse_args(rest)
    else:
        ns = tgi_parser().parse_args(rest)
        names = [ns.model_id]
        return Engine("tgi", names, {}, ns.api_key, argv), ns.hostname, ns.port
    loras = dict(item.split("=", 1) for item in ns.lora_modules)
    if loras and not ns.enable_lora:
        sys.exit("vllm stand-in: --lora-modules needs --enable-lora")
    return Engine("vllm", ns.served_model_name or [ns.model], loras, ns.api_key, argv), ns.host, ns.port


async def serve(engine: Engine, host: str, port: int) -> None:
    app = create_app(MockConfig())
    app.middlewares.append(engine.middleware)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    print(f"stand-in {engine.kind}: serving {engine.names} on {host}:{port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    if os.environ.get("STANDIN_IGNORE_TERM"):
        loop.add_signal_handler(signal.SIGTERM, lambda: print("stand-in: ignoring SIGTERM", flush=True))
    else:
        loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    print("stand-in: SIGTERM, stopping", flush=True)
    await runner.cleanup()


def main() -> None:
    engine, host, port = parse(sys.argv[1:])
    print(f"stand-in {engine.kind} (not the real engine) starting: {' '.join(sys.argv[1:])}", flush=True)
    if os.environ.get("STANDIN_EXIT"):
        print("stand-in: CUDA error: no GPU found (simulated start failure)", flush=True)
        sys.exit(int(os.environ["STANDIN_EXIT"]))
    if os.environ.get("STANDIN_CHILD"):
        engine.child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    asyncio.run(serve(engine, host, port))


if __name__ == "__main__":
    main()
