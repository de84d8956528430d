"""Policy files: YAML → validated models → a compiled, immutable ``Policy``.

Every configuration mistake is raised here as a ``PolicyError`` whose lines name the YAML path
of the mistake (``chains.default[2].params.forbid: …``), so ``chaperone check`` and hot reload
report the same messages. The file's shape (the pydantic models) lives in ``proxy.policyfile``; its
names are importable from here too.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from proxy.accesslog import AccessLogConfig
from proxy.chain import Chain, compile_chain
from proxy.conversations import ResponsesConfig
from proxy.errors import Forbidden, ModelNotFound, Unauthorized
from proxy.limits import KeyLimits
from proxy.metrics import MetricsConfig
from proxy.passthrough import DEFAULT_ALLOW, RealtimeConfig, Rules
from proxy.policyfile import AdminConfig as AdminConfig
from proxy.policyfile import BackendConfig as BackendConfig
from proxy.policyfile import ConsoleConfig as ConsoleConfig
from proxy.policyfile import KeyConfig as KeyConfig
from proxy.policyfile import Limits as Limits
from proxy.policyfile import ModelConfig as ModelConfig
from proxy.policyfile import PolicyFile as PolicyFile
from proxy.policyfile import bearer as bearer
from proxy.pricing import Price
from proxy.store import StoreConfig

if TYPE_CHECKING:
    from opentelemetry.trace import Tracer

    from proxy.policyfile import HedgeConfig
    from proxy.registry import PluginRegistry
    from proxy.splits import SplitSpec


class PolicyError(Exception):
    """A policy that cannot be used; ``errors`` holds one ``yaml.path: message`` line per mistake."""

    def __init__(self, source: str, errors: list[str], lines: list[int | None] | None = None) -> None:
        self.source = source
        self.errors = errors
        self.lines = lines or [None] * len(errors)  # where in the file, when known
        super().__init__(f"{source}: " + "; ".join(errors))

    def report(self) -> str:
        """One line per mistake: ``file: yaml.path: message (line N)``."""
        return "\n".join(
            f"{self.source}: {error}" + (f" (line {line})" if line else "")
            for error, line in zip(self.errors, self.lines, strict=True)
        )


# --------------------------------------------------------------------------------------------
# ${ENV} substitution
# --------------------------------------------------------------------------------------------

_ENV = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:-|:\+)([^}]*))?\}")


def substitute_env(value: str, env: Mapping[str, str], path: str) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``${VAR:+word}`` (shell meanings); ``$$`` is a literal ``$``."""

    def expand(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group(1), match.group(2), match.group(3)
        current = env.get(name, "")
        if op == ":-":
            return current or arg
        if op == ":+":
            return arg if current else ""
        if name not in env:
            raise PolicyError("", [f"{path}: environment variable {name} is not set (use ${{{name}:-default}})"])
        return current

    return _ENV.sub(expand, value)


def _expand_tree(node: Any, env: Mapping[str, str], path: str, errors: list[str]) -> Any:
    if isinstance(node, str):
        try:
            return substitute_env(node, env, path or "(top)")
        except PolicyError as exc:
            errors.extend(exc.errors)
            return node
    if isinstance(node, dict):
        return {k: _expand_tree(v, env, _join(path, k), errors) for k, v in node.items()}
    if isinstance(node, list):
        return [_expand_tree(v, env, f"{path}[{i}]", errors) for i, v in enumerate(node)]
    return node


def _join(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _msg(text: str) -> str:
    return text.removeprefix("Value error, ")


def format_loc(prefix: str, loc: tuple[int | str, ...]) -> str:
    path = prefix
    for part in loc:
        path = _join(path, part)
    return path or "(top)"


# --------------------------------------------------------------------------------------------
# The compiled policy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Route:
    """Where one client-facing model name goes."""

    name: str
    backend: str
    upstream_model: str | None
    fallback: tuple[str, ...] = ()
    # [balance] a route with several targets (proxy/splits.py; backends/canary.py picks one per attempt); hedging
    split: SplitSpec | None = None
    hedge: HedgeConfig | None = None
    variant: str | None = None  # the label of a split's variant route


@dataclass(frozen=True, slots=True)
class Caller:
    """Who sent the request (``name`` None when the policy runs open) and what they may use."""

    name: str | None
    chain: Chain
    models: frozenset[str] | None
    authorization: str | None = None  # the client's own Authorization header, kept only in open mode
    key_id: str | None = None  # a virtual key's id (None for static keys and open mode)
    metadata: Mapping[str, str] = field(default_factory=dict)  # a virtual key's team, user, …
    passthrough: Rules | None = None  # the key's own passthrough rules (the policy's when None)
    limits: KeyLimits | None = None  # the key's own rate limits and budgets (the budget plugin reads them)

    def check_model(self, model: str) -> None:
        if self.models is not None and model not in self.models:
            raise Forbidden(f"key {self.name!r} may not use model {model!r}", param="model")


# A static key: name, chain, models, passthrough, limits.
KeyEntry = tuple[str, Chain, frozenset[str] | None, Rules | None, KeyLimits | None]


@dataclass(frozen=True)
class Policy:
    source: str
    backends: Mapping[str, BackendConfig]
    routes: Mapping[str, Route]
    chains: Mapping[str, Chain]
    default_chain: Chain
    store: StoreConfig
    limits: Limits
    keys: Mapping[bytes, KeyEntry] | None
    plugins: tuple[Any, ...] = field(default=())
    admin: AdminConfig | None = None
    passthrough: Rules = field(default_factory=lambda: Rules.compile(DEFAULT_ALLOW, "passthrough.allow"))
    responses: ResponsesConfig = field(default_factory=ResponsesConfig)
    prices: Mapping[str, Price] = field(default_factory=dict)  # the policy's own entries; see proxy.pricing
    realtime: RealtimeConfig = field(default_factory=RealtimeConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)  # [metrics]
    access_log: AccessLogConfig = field(default_factory=AccessLogConfig)  # [metrics]
    console: ConsoleConfig = field(default_factory=ConsoleConfig)  # [console]

    @property
    def records_requests(self) -> bool:
        """[console] Whether requests go into the request log: the policy can serve a console (an admin
        section, the console not turned off). Without one nobody could read the log, so nothing pays for it."""
        return self.admin is not None and self.console.enabled is not False

    @property
    def open(self) -> bool:
        """Open (any caller, no key) only without static keys and without an admin section."""
        return self.keys is None and self.admin is None

    def route_for(self, model: str) -> Route:
        route = self.routes.get(model) or self.routes.get("*")
        if route is None:
            raise ModelNotFound(f"The model {model!r} does not exist or you do not have access to it.", param="model")
        return route

    def authenticate(self, authorization: str | None) -> Caller:
        """The caller for an ``Authorization`` header by the static keys; 401 for a missing or unknown key.

        Virtual keys (``sk-chp-…``) are checked by ``proxy.keys.KeyRing``, which falls back to this.
        """
        if self.open:
            return Caller(None, self.default_chain, None, authorization)
        token = bearer(authorization)
        if not token:
            raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>'.")
        # Looking up the SHA-256 of the presented key leaks nothing usable about stored keys.
        entry = self.keys.get(hashlib.sha256(token.encode()).digest()) if self.keys is not None else None
        if entry is None:
            raise Unauthorized("Incorrect API key provided.")
        name, chain, models, passthrough, limits = entry
        return Caller(name, chain, models, passthrough=passthrough, limits=limits)

    def passthrough_for(self, caller: Caller) -> Rules:
        """The passthrough rules that apply to ``caller``: its key's own, else the policy's."""
        return caller.passthrough or self.passthrough

    def client_models(self, caller: Caller) -> list[str]:
        names = [name for name in self.routes if name != "*"]
        if caller.models is not None:
            names = [name for name in names if name in caller.models]
        return names


# --------------------------------------------------------------------------------------------
# Loading and compiling
# --------------------------------------------------------------------------------------------


def load_policy(
    path: str | Path,
    registry: PluginRegistry,
    *,
    env: Mapping[str, str] | None = None,
    tracer: Tracer | None = None,
) -> Policy:
    """Read, validate and compile a policy file; raise ``PolicyError`` naming every mistake found."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(source, [f"cannot read the file: {exc.strerror or exc}"]) from None
    return compile_policy_text(text, registry, source=source, env=env, tracer=tracer)


def compile_policy_text(
    text: str,
    registry: PluginRegistry,
    *,
    source: str = "<policy>",
    env: Mapping[str, str] | None = None,
    tracer: Tracer | None = None,
) -> Policy:
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise PolicyError(source, [f"{where}invalid YAML: {exc.problem or exc}"]) from None
    except yaml.YAMLError as exc:
        raise PolicyError(source, [f"invalid YAML: {exc}"]) from None
    if not isinstance(data, dict):
        raise PolicyError(source, ["(top): a policy is a mapping with backends, models and chains"])
    try:
        return compile_policy(data, registry, source=source, env=env, tracer=tracer)
    except PolicyError as exc:
        index = _line_numbers(text)
        raise PolicyError(source, exc.errors, [_line_of(error, index) for error in exc.errors]) from None


def _line_numbers(text: str) -> dict[str, int]:
    """YAML path → 1-based line of its value, for pointing at mistakes (only computed on error)."""
    index: dict[str, int] = {}

    def walk(node: yaml.Node, path: str) -> None:
        index.setdefault(path or "(top)", node.start_mark.line + 1)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = _join(path, key.value)
                index[child] = key.start_mark.line + 1
                walk(value, child)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{path}[{i}]")

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return index
    if root is not None:
        walk(root, "")
    return index


def _line_of(error: str, index: dict[str, int]) -> int | None:
    """The line of the nearest enclosing YAML path of ``path: message`` that the file has."""
    path = error.split(": ", 1)[0]
    while path:
        if path in index:
            return index[path]
        cut = max(path.rfind("."), path.rfind("["))
        path = path[:cut] if cut > 0 else ""
    return None


def compile_policy(
    data: dict[str, Any],
    registry: PluginRegistry,
    *,
    source: str = "<policy>",
    env: Mapping[str, str] | None = None,
    tracer: Tracer | None = None,
) -> Policy:
    errors: list[str] = []
    data = _expand_tree(data, os.environ if env is None else env, "", errors)
    if errors:
        raise PolicyError(source, errors)
    try:
        spec = PolicyFile.model_validate(data)
    except ValidationError as exc:
        raise PolicyError(source, [f"{format_loc('', e['loc'])}: {_msg(e['msg'])}" for e in exc.errors()]) from None

    routes = _compile_routes(spec, errors)
    plugins: list[Any] = []
    chains: dict[str, Chain] = {}
    for chain_name, steps in spec.chains.items():
        instances = _instantiate_steps(chain_name, steps, registry, errors)
        plugins.extend(instance for _, instance in instances)
        try:
            chains[chain_name] = compile_chain(
                chain_name,
                instances,
                tracer=tracer,
                timed=(spec.metrics.enabled and spec.metrics.plugin_timing)
                or (spec.admin is not None and spec.console.step_timing and spec.console.enabled is not False),
            )
        except TypeError as exc:
            errors.append(f"chains.{chain_name}: {exc}")
    if spec.default_chain not in spec.chains:
        errors.append(
            f"default_chain: no chain named {spec.default_chain!r} (have: {', '.join(spec.chains) or 'none'})"
        )
    keys = _compile_keys(spec, chains, errors)
    if spec.metrics.require_admin_key and spec.admin is None:  # [metrics]
        errors.append("metrics.require_admin_key: needs an admin section (the key GET /metrics asks for)")
    if spec.console.enabled and spec.admin is None:  # [console]
        errors.append("console.enabled: needs an admin section (the key the console's login asks for)")
    if errors:
        raise PolicyError(source, errors)
    return Policy(
        source=source,
        backends=dict(spec.backends),
        routes=routes,
        chains=chains,
        default_chain=chains[spec.default_chain],
        store=spec.store,
        limits=spec.limits,
        keys=keys,
        plugins=tuple(plugins),
        admin=spec.admin,
        passthrough=Rules.compile(spec.passthrough.allow, "passthrough.allow"),
        responses=spec.responses,
        prices={name: entry.price() for name, entry in spec.prices.items()},
        realtime=spec.realtime,
        metrics=spec.metrics,  # [metrics]
        access_log=spec.access_log,  # [metrics]
        console=spec.console,  # [console]
    )


def _compile_routes(spec: PolicyFile, errors: list[str]) -> dict[str, Route]:
    routes: dict[str, Route] = {}
    for name, model in spec.models.items():
        for i, other in enumerate(model.fallback):
            if other not in spec.models or other == "*":
                errors.append(f"models.{name}.fallback[{i}]: no model named {other!r}")
        if model.split is not None or model.balance is not None:  # [balance]
            from proxy.splits import compile_split

            route = compile_split(name, model, spec.backends, errors)
            if route is not None:
                routes[name] = route
            continue
        assert model.backend is not None  # ModelConfig checks it
        candidates = [model.backend] if isinstance(model.backend, str) else model.backend
        for i, backend in enumerate(candidates):
            if backend not in spec.backends:
                where = f"models.{name}.backend" + ("" if isinstance(model.backend, str) else f"[{i}]")
                errors.append(f"{where}: no backend named {backend!r} (have: {', '.join(spec.backends) or 'none'})")
        chosen = next((b for b in candidates if b in spec.backends and spec.backends[b].usable), None)  # [launcher]
        if chosen is None:
            if all(b in spec.backends for b in candidates):
                missing = [f"{b}: {spec.backends[b].launch.missing()}" for b in candidates  # type: ignore[union-attr]
                           if spec.backends[b].enabled and not spec.backends[b].usable]  # fmt: skip
                errors.append(f"models.{name}.backend: none of {candidates} is enabled" +
                              (f" ({'; '.join(missing)})" if missing else ""))  # fmt: skip
            continue
        if model.hedge is not None:  # [balance]
            from proxy.splits import check_hedge

            check_hedge(name, [chosen], spec.backends, errors)
        routes[name] = Route(name, chosen, model.model, tuple(model.fallback), hedge=model.hedge)
    return routes


def _instantiate_steps(
    chain_name: str, steps: list[Any], registry: PluginRegistry, errors: list[str]
) -> list[tuple[str, Any]]:
    instances: list[tuple[str, Any]] = []
    for i, step in enumerate(steps):
        where = f"chains.{chain_name}[{i}]"
        if isinstance(step, str):
            step = {step: None}
        if not isinstance(step, dict) or len(step) != 1:
            errors.append(f"{where}: each step is a mapping with one plugin name, like '- params: {{…}}'")
            continue
        ((plugin_name, config),) = step.items()
        cls = registry.get(str(plugin_name))
        if cls is None:
            errors.append(f"{where}: unknown plugin {plugin_name!r} (known: {', '.join(registry.names()) or 'none'})")
            continue
        try:
            validated = cls.Config.model_validate(config or {})
        except ValidationError as exc:
            errors.extend(f"{format_loc(f'{where}.{plugin_name}', e['loc'])}: {_msg(e['msg'])}" for e in exc.errors())
            continue
        try:
            instances.append((str(plugin_name), cls(validated)))
        except ValueError as exc:
            errors.append(f"{where}.{plugin_name}: {exc}")
    return instances


def _compile_keys(spec: PolicyFile, chains: Mapping[str, Chain], errors: list[str]) -> dict[bytes, KeyEntry] | None:
    if spec.keys is None:
        return None
    keys: dict[bytes, KeyEntry] = {}
    for i, entry in enumerate(spec.keys):
        chain_name = entry.chain or spec.default_chain
        if chain_name not in spec.chains:
            errors.append(f"keys[{i}].chain: no chain named {chain_name!r}")
            continue
        for j, model in enumerate(entry.models or []):
            if model not in spec.models:
                errors.append(f"keys[{i}].models[{j}]: no model named {model!r}")
        if entry.key.startswith("sha256:"):
            digest = bytes.fromhex(entry.key.removeprefix("sha256:"))
        else:
            digest = hashlib.sha256(entry.key.encode()).digest()
        if digest in keys:
            errors.append(f"keys[{i}].key: the same key is given twice")
        if chain_name in chains:
            models = frozenset(entry.models) if entry.models is not None else None
            rules = None if entry.passthrough is None else Rules.compile(entry.passthrough, f"keys[{i}].passthrough")
            keys[digest] = (entry.name, chains[chain_name], models, rules, entry.limits)
    return keys
