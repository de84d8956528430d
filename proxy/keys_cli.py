"""``chaperone keys create|list|rotate|revoke``: manage virtual keys in a policy's state store.

The command opens the policy's store directly (diskcache under ``CHAPERONE_HOME``, or the policy's
Redis URL): it needs no running proxy, and every replica reading that store sees the change within
a second (their key cache lives 0.5 s). It requires the policy's master key, from ``--admin-key`` or
``CHAPERONE_ADMIN_KEY``, checked against ``admin.key`` of the policy. For a proxy you can only reach
over HTTP, use the admin API (``/chaperone/keys``) instead.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from proxy.keys import KeyBusy, KeyManager, KeyNotFound, KeySpec, KeyStateError, grant_problem, parse_duration
from proxy.limits import KeyLimits
from proxy.policy import Policy, PolicyError, load_policy
from proxy.registry import build_registry, extra_modules_from_env
from proxy.settings import DEFAULT_POLICY, Settings
from proxy.store import StoreError, open_store

EXAMPLES = """examples:
  export CHAPERONE_ADMIN_KEY=…            # the policy has  admin: {key: ${CHAPERONE_ADMIN_KEY}}
  chaperone keys create --policy prod.yaml --name billing-bot --chain default \\
      --models gpt-4o-mini,local-llama --team billing --user ana --expires 30d
  chaperone keys list --policy prod.yaml
  chaperone keys rotate 3f9a0c1d2e4b5a69 --overlap 2h     # the old secret works 2 more hours
  chaperone keys revoke 3f9a0c1d2e4b5a69                  # refused on every replica within a second
  chaperone keys list --json | jq '.[] | select(.status == "active") | .id'

--expires takes 30d, 12h, 15m, 90s, 2w or an ISO 8601 time (UTC unless it names a zone).
The secret (sk-chp-…) is printed once by create and rotate; only its SHA-256 is stored."""


class CliError(Exception):
    """A message for the user and an exit status; never a traceback."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


def register_cli(subparsers: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add ``keys`` and its subcommands; each sets ``func`` returning an exit status."""
    keys = subparsers.add_parser(
        "keys", help="create, list, rotate and revoke virtual keys", epilog=EXAMPLES, formatter_class=_Raw
    )
    actions = keys.add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--policy", help=f"policy file (default: $CHAPERONE_POLICY or {DEFAULT_POLICY.name})")
    common.add_argument("--admin-key", help="the policy's admin key (default: $CHAPERONE_ADMIN_KEY)")
    common.add_argument("--json", action="store_true", help="print JSON, for scripts")

    create = actions.add_parser(
        "create", parents=[common], help="issue a new key", epilog=EXAMPLES, formatter_class=_Raw
    )
    create.add_argument("--name", required=True, help="who holds the key (shows in logs)")
    create.add_argument("--chain", help="chain for its requests (default: the policy's default_chain)")
    create.add_argument("--models", help="comma-separated models it may use (default: all)")
    create.add_argument("--team", help="metadata: team")
    create.add_argument("--user", help="metadata: user")
    create.add_argument("--meta", action="append", default=[], metavar="K=V", help="more metadata (repeatable)")
    create.add_argument(
        "--passthrough", action="append", metavar="RULE",
        help="a passthrough rule such as 'POST /audio/*' or 'WS /realtime' (repeatable; replaces the policy's)",
    )  # fmt: skip
    create.add_argument(
        "--limit", action="append", default=[], metavar="K=V",
        help="a rate limit or budget: rpm=60, tpm=100000, tokens_per_day=…, usd_per_month=20 (repeatable)",
    )  # fmt: skip
    create.add_argument("--expires", help="30d, 12h, … or an ISO 8601 time (default: never)")
    create.set_defaults(func=_run(_create))

    listing = actions.add_parser(
        "list", parents=[common], help="show every key (never a secret)", epilog=EXAMPLES, formatter_class=_Raw
    )
    listing.set_defaults(func=_run(_list))

    rotate = actions.add_parser(
        "rotate",
        parents=[common],
        help="issue a new secret; the old one stops later",
        epilog=EXAMPLES,
        formatter_class=_Raw,
    )
    rotate.add_argument("id", help="the key's id (from list)")
    rotate.add_argument("--overlap", help="how long the old secret keeps working (default: admin.rotation_overlap_s)")
    rotate.set_defaults(func=_run(_rotate))

    revoke = actions.add_parser(
        "revoke", parents=[common], help="refuse the key from now on", epilog=EXAMPLES, formatter_class=_Raw
    )
    revoke.add_argument("id", help="the key's id (from list)")
    revoke.set_defaults(func=_run(_revoke))


Action = Callable[[argparse.Namespace, Policy, KeyManager], Awaitable[Any]]


def _run(action: Action) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        try:
            return asyncio.run(_open_and_do(args, action))
        except CliError as exc:
            print(f"chaperone keys: {exc}", file=sys.stderr)
            return exc.status

    return run


async def _open_and_do(args: argparse.Namespace, action: Action) -> int:
    policy = _policy(args)
    try:
        home = Settings.from_env().home
    except ValueError as exc:
        raise CliError(f"bad CHAPERONE_* environment setting: {exc}") from None
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create the state directory {home}: {exc.strerror or exc}") from None
    store = open_store(policy.store, home)
    try:
        result = await action(args, policy, KeyManager(store))
    except KeyNotFound as exc:
        raise CliError(str(exc), 1) from None
    except (KeyStateError, KeyBusy) as exc:
        raise CliError(str(exc), 1) from None
    except StoreError as exc:
        raise CliError(f"the state store cannot be used: {exc}", 1) from None
    finally:
        await store.close()
    print(json.dumps(result, indent=2) if args.json else _human(args.action, result))
    return 0


def _policy(args: argparse.Namespace) -> Policy:
    path = Path(args.policy or os.environ.get("CHAPERONE_POLICY") or DEFAULT_POLICY)
    try:
        registry = build_registry(extra=extra_modules_from_env(os.environ.get("CHAPERONE_PLUGINS")))
    except (ImportError, TypeError, ValueError) as exc:
        raise CliError(f"cannot load plugins: {exc}") from None
    try:
        policy = load_policy(path, registry)
    except PolicyError as exc:
        raise CliError(f"the policy has errors:\n{exc.report()}") from None
    if policy.admin is None:
        raise CliError(f"{path} has no admin section; add  admin: {{key: ${{CHAPERONE_ADMIN_KEY}}}}  to manage keys")
    key = args.admin_key or os.environ.get("CHAPERONE_ADMIN_KEY")
    if not key:
        raise CliError("the admin key is needed: pass --admin-key or set CHAPERONE_ADMIN_KEY")
    if not policy.admin.accepts(f"Bearer {key}"):
        raise CliError(f"the admin key does not match admin.key of {path}")
    return policy


async def _create(args: argparse.Namespace, policy: Policy, manager: KeyManager) -> dict[str, Any]:
    metadata = {k: v for k, v in (("team", args.team), ("user", args.user)) if v is not None}
    for pair in args.meta:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--meta takes NAME=VALUE, got {pair!r}")
        metadata[name] = value
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models is not None else None
    limits: dict[str, Any] = {}
    for pair in args.limit:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise CliError(f"--limit takes NAME=VALUE, got {pair!r}")
        limits[name] = value
    try:
        spec = KeySpec(
            name=args.name, chain=args.chain, models=models, metadata=metadata, expires=args.expires,
            passthrough=args.passthrough, limits=KeyLimits.model_validate(limits) if limits else None,
        )  # fmt: skip
    except ValueError as exc:  # pydantic's ValidationError is a ValueError too
        raise CliError(_first_line(exc)) from None
    try:
        spec.expires_at(manager.clock())
    except ValueError as exc:
        raise CliError(f"--expires: {exc}") from None
    problem = grant_problem(policy, spec.chain, spec.models)
    if problem is not None:
        raise CliError(f"--{problem[0]}: {problem[1]}")
    record, secret = await manager.create(spec)
    return {**record.view(manager.clock()), "key": secret}


async def _list(args: argparse.Namespace, policy: Policy, manager: KeyManager) -> list[dict[str, Any]]:
    now = manager.clock()
    return [record.view(now) for record in await manager.list()]


async def _rotate(args: argparse.Namespace, policy: Policy, manager: KeyManager) -> dict[str, Any]:
    assert policy.admin is not None
    try:
        overlap = parse_duration(args.overlap) if args.overlap is not None else policy.admin.rotation_overlap_s
    except ValueError as exc:
        raise CliError(f"--overlap: {exc}") from None
    record, secret = await manager.rotate(args.id, overlap_s=overlap)
    return {**record.view(manager.clock()), "key": secret}


async def _revoke(args: argparse.Namespace, policy: Policy, manager: KeyManager) -> dict[str, Any]:
    return (await manager.revoke(args.id)).view(manager.clock())


# ---- human output -------------------------------------------------------------------------------------


def _human(action: str, result: Any) -> str:
    if action == "list":
        return _table(result) if result else "no virtual keys yet (chaperone keys create --name …)"
    lines = [f"{action}d virtual key {result['id']} ({result['name']}): {result['status']}"]
    lines.append(f"  chain: {result['chain'] or '(default)'}   models: {_models(result)}   {_meta(result)}".rstrip())
    lines.append(f"  expires: {_when(result['expires_at'])}")
    if "key" in result:
        lines.append(f"  key: {result['key']}")
        lines.append("Store the key now: it is shown only this once.")
    if action == "rotate":
        older = [s["not_after"] for s in result["secrets"] if s["not_after"] is not None]
        if older:
            lines.append(f"The previous secret keeps working until {_when(max(older))}.")
    return "\n".join(lines)


def _table(rows: list[dict[str, Any]]) -> str:
    header = ("ID", "NAME", "STATUS", "CHAIN", "MODELS", "METADATA", "EXPIRES")
    body = [
        (r["id"], r["name"], r["status"], r["chain"] or "(default)", _models(r), _meta(r), _when(r["expires_at"]))
        for r in rows
    ]
    widths = [max(len(str(row[i])) for row in (header, *body)) for i in range(len(header))]
    return "\n".join("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in (header, *body))  # fmt: skip


def _models(view: dict[str, Any]) -> str:
    return ",".join(view["models"]) if view["models"] is not None else "all"


def _meta(view: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in view["metadata"].items())


def _when(epoch: int | None) -> str:
    if epoch is None:
        return "never"
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _first_line(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        first = errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"--{where}: {str(first['msg']).removeprefix('Value error, ')}"
    return str(exc)


class _Raw(argparse.RawDescriptionHelpFormatter):
    pass
