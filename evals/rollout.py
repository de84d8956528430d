"""``chaperone rollout``: change the ``split:`` weights of one model route in a policy file, safely.

ruamel.yaml's round-trip loader finds where each ``weight`` value sits (line and column) and only
those numbers are rewritten in the original text: comments, indentation, flow mappings, quoting and
``${ENV}`` references stay byte for byte. Before anything is written:
- the edited text must compile as a policy (``proxy.policy.compile_policy_text``, the same checks as
  ``chaperone check`` and the server's reload), and the original must compile too (so a failure is
  the edit's, not the environment's);
- the edited document, read back with PyYAML, must equal the original except for those weights;
- the file must not have changed since it was read.
Then it replaces the old file atomically (a temporary file in the same directory, fsync, rename; the
file mode is kept), so a hot-reloading gateway sees the old policy or the new one, never half.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import re
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

_NUMBER = re.compile(r"[-+]?(?:\d[\d_]*)?(?:\.\d+)?(?:[eE][-+]?\d+)?(?=[\s,}#]|$)")


class RolloutError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Edit:
    text: str
    before: dict[str, float]
    after: dict[str, float]


def _label(entry: Any, route: Any) -> str:
    candidates = (entry.get("name"), entry.get("model"), entry.get("backend"), route.get("model"), route.get("backend"))
    for value in candidates:
        if isinstance(value, str) and value:
            return value
    return "?"


def _yaml() -> Any:
    from ruamel.yaml import YAML

    return YAML(typ="rt")  # only read: its line/column marks say where each weight is


def edit_weights(text: str, route: str, weights: dict[str, float] | None = None, promote: str | None = None) -> Edit:
    """The policy text with the route's split weights changed (``promote``: that variant 100, the rest 0)."""
    rt = _yaml()
    data = rt.load(text)
    entries, route_node = _split_of(data, route)
    labels = [_label(entry, route_node) for entry in entries]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise RolloutError(f"models.{route}.split: variants {duplicates} share a label; give each a 'name'")
    wanted = dict(weights or {})
    if promote is not None:
        wanted = {label: (100.0 if label == promote else 0.0) for label in labels}
        if promote not in labels:
            raise RolloutError(f"models.{route}.split has no variant {promote!r} (variants: {', '.join(labels)})")
    for label, value in wanted.items():
        if label not in labels:
            raise RolloutError(f"models.{route}.split has no variant {label!r} (variants: {', '.join(labels)})")
        if not value >= 0:
            raise RolloutError(f"weight of {label!r} must be >= 0, got {value}")
    before = {label: float(entry["weight"]) for label, entry in zip(labels, entries, strict=True)}
    after = {**before, **wanted}
    if not any(after.values()):
        raise RolloutError(f"models.{route}.split: every weight would be 0 (no variant would get traffic)")
    lines = text.splitlines(keepends=True)
    for label, entry in zip(labels, entries, strict=True):
        if label in wanted and wanted[label] != before[label]:
            line, column = entry.lc.value("weight")
            lines[line] = _replace_number(lines[line], column, wanted[label], f"models.{route}.split[{label}]")
    return Edit("".join(lines), before, after)


def _replace_number(line: str, column: int, value: float, where: str) -> str:
    match = _NUMBER.match(line, column)
    if match is None or match.end() == column:
        raise RolloutError(f"{where}: the weight is not a plain number in the file; edit it by hand")
    number = f"{int(value)}" if float(value).is_integer() else f"{value:g}"
    return line[:column] + number + line[match.end() :]


def _split_of(data: Any, route: str) -> tuple[list[Any], Any]:
    models = data.get("models") if isinstance(data, dict) else None
    if not isinstance(models, dict) or route not in models:
        known = ", ".join(map(str, models or {})) if isinstance(models, dict) else "none"
        raise RolloutError(f"no model route {route!r} in the policy (routes: {known})")
    node = models[route]
    entries = node.get("split") if isinstance(node, dict) else None
    if not isinstance(entries, list) or not entries:
        raise RolloutError(f"models.{route} has no 'split:' list to change (see the canary recipe in the README)")
    return entries, node


def check_edit(old: str, new: str, route: str, after: dict[str, float], source: str) -> None:
    """Compile both texts and prove the edit changed the split weights and nothing else."""
    from proxy.policy import PolicyError, compile_policy_text
    from proxy.registry import build_registry, extra_modules_from_env

    registry = build_registry(extra=extra_modules_from_env(os.environ.get("CHAPERONE_PLUGINS")))
    try:
        compile_policy_text(old, registry, source=source)
    except PolicyError as exc:
        raise RolloutError("the policy does not compile as it is; fix it first:\n" + exc.report()) from None
    try:
        compile_policy_text(new, registry, source=f"{source} (edited)")
    except PolicyError as exc:
        raise RolloutError("the edited policy does not compile; nothing written:\n" + exc.report()) from None
    before_doc, after_doc = yaml.safe_load(old), yaml.safe_load(new)
    expected = copy.deepcopy(before_doc)
    route_node = expected["models"][route]
    for entry in route_node["split"]:
        entry["weight"] = after[_label(entry, route_node)]
    if after_doc != expected:
        raise RolloutError("the edit changed more than the split weights (a YAML round-trip problem); nothing written")


def write_atomic(path: Path, text: str, expected_digest: str) -> None:
    mode = path.stat().st_mode & 0o7777
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        if hashlib.sha256(path.read_bytes()).hexdigest() != expected_digest:
            raise RolloutError(f"{path} changed while it was being edited; nothing written (run again)")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def rollout(path: Path, route: str, weights: dict[str, float], promote: str | None, dry_run: bool) -> Edit:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RolloutError(f"cannot read {path}: {exc.strerror or exc}") from None
    old = raw.decode("utf-8")
    edit = edit_weights(old, route, weights, promote)
    check_edit(old, edit.text, route, edit.after, str(path))
    if not dry_run and edit.text != old:
        write_atomic(path, edit.text, hashlib.sha256(raw).hexdigest())
    return edit


def shares(weights: dict[str, float]) -> str:
    total = sum(weights.values()) or 1.0
    return ", ".join(f"{k} {v:g} ({v / total:.0%})" for k, v in weights.items())


def _parse_weights(items: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items:
        label, sep, raw = item.rpartition("=")
        try:
            if not sep or not label:
                raise ValueError
            out[label] = float(raw)
        except ValueError:
            raise RolloutError(f"--weight {item!r}: expected VARIANT=WEIGHT, for example canary=25") from None
    return out


def _main(args: argparse.Namespace) -> int:
    try:
        if bool(args.weight) == (args.promote is not None):
            raise RolloutError("give --weight VARIANT=W (repeatable) or --promote VARIANT, not both")
        edit = rollout(Path(args.policy), args.route, _parse_weights(args.weight), args.promote, args.dry_run)
    except RolloutError as exc:
        print(f"chaperone rollout: {exc}", file=sys.stderr)
        return 2
    print(f"{args.route}: {shares(edit.before)}")
    print(f"{' ' * len(args.route)}→ {shares(edit.after)}" + ("  (dry run: not written)" if args.dry_run else ""))
    return 0


def build_parser(epilog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chaperone rollout", description="Change the canary/A-B split weights of a model route in a policy file.",
        epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    parser.add_argument("policy", help="policy file to edit in place")
    parser.add_argument("route", help="model route with a split: list")
    parser.add_argument("--weight", action="append", default=[], metavar="VARIANT=W", help="set a variant's weight")
    parser.add_argument("--promote", metavar="VARIANT", help="that variant 100, every other 0")
    parser.add_argument("--dry-run", action="store_true", help="check and show the change, write nothing")
    parser.set_defaults(func=_main)
    return parser
