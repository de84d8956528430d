"""Policy validation for urls, balance, health, split and hedge: every mistake names its YAML path."""

from __future__ import annotations

import textwrap

import pytest

from proxy.policy import PolicyError, compile_policy_text
from proxy.registry import PluginRegistry
from proxy.splits import SplitSpec


def compile_text(body: str, registry: PluginRegistry) -> object:
    return compile_policy_text(textwrap.dedent(body) + "chains: {default: []}\n", registry, env={})


def errors_of(body: str, registry: PluginRegistry) -> list[str]:
    with pytest.raises(PolicyError) as info:
        compile_text(body, registry)
    return info.value.errors


POOL = """
backends:
  a: {urls: ["http://127.0.0.1:9/v1", "http://127.0.0.1:10/v1"]}
  b: {url: "http://127.0.0.1:11/v1"}
"""


def test_negative_split_weight_names_its_path(registry: PluginRegistry) -> None:
    errors = errors_of(
        POOL + "models:\n  gpt: {backend: a, split: [{model: v1, weight: 95}, {model: v2, weight: -5}]}\n", registry
    )
    assert errors == ["models.gpt.split[1].weight: Input should be greater than or equal to 0"]


def test_bad_replica_url_names_its_index(registry: PluginRegistry) -> None:
    errors = errors_of('backends:\n  a: {urls: ["http://x/v1", "ftp://y"]}\nmodels:\n  m: {backend: a}\n', registry)
    assert errors[0].startswith("backends.a.urls[1]: ") and "http://" in errors[0]


def test_url_and_urls_together(registry: PluginRegistry) -> None:
    errors = errors_of(
        'backends:\n  a: {url: "http://x/v1", urls: ["http://y/v1"]}\nmodels:\n  m: {backend: a}\n', registry
    )
    assert errors == ["backends.a: give exactly one of 'url', 'urls', 'builtin' and 'launch'"]


def test_weights_must_match_urls(registry: PluginRegistry) -> None:
    text = 'backends:\n  a: {urls: ["http://x/v1", "http://y/v1"], balance: {strategy: weighted, weights: [1]}}\n'
    errors = errors_of(text + "models:\n  m: {backend: a}\n", registry)
    assert errors == ["backends.a: balance.weights has 1 entries for 2 urls"]


def test_unknown_strategy_and_health_path(registry: PluginRegistry) -> None:
    text = 'backends:\n  a: {urls: ["http://x/v1"], balance: {strategy: random}, health: {path: health}}\n'
    errors = errors_of(text + "models:\n  m: {backend: a}\n", registry)
    assert errors[0].startswith("backends.a.balance.strategy: Input should be 'round_robin'")
    assert errors[1] == "backends.a.health.path: path must start with '/' (it is taken on the replica's host)"


def test_split_entry_naming_an_unknown_backend(registry: PluginRegistry) -> None:
    errors = errors_of(POOL + "models:\n  gpt: {backend: a, split: [{weight: 1}, {backend: c, weight: 1}]}\n", registry)
    assert errors == ["models.gpt.split[1].backend: no backend named 'c' (have: a, b)"]


def test_split_labels_must_differ_and_some_weight_be_positive(registry: PluginRegistry) -> None:
    errors = errors_of(POOL + "models:\n  gpt: {backend: a, split: [{weight: 1}, {weight: 1}]}\n", registry)
    assert errors == ["models.gpt.split[1].name: the label 'a' is used twice; give each variant a name"]
    errors = errors_of(POOL + "models:\n  gpt: {backend: a, split: [{model: x, weight: 0}]}\n", registry)
    assert errors == ["models.gpt.split: every variant has weight 0 or a disabled backend"]


def test_split_without_any_backend(registry: PluginRegistry) -> None:
    errors = errors_of(POOL + "models:\n  gpt: {split: [{backend: a, weight: 1}, {model: x, weight: 1}]}\n", registry)
    assert errors == ["models.gpt: give 'backend' (or a backend on every 'split' entry)"]


def test_hedge_needs_replicas(registry: PluginRegistry) -> None:
    errors = errors_of(POOL + "models:\n  m: {backend: b, hedge: {after_ms: 50}}\n", registry)
    assert errors == ["models.m.hedge: backend 'b' has a single url; hedging needs a backend with several 'urls'"]
    errors = errors_of(POOL + "models:\n  m: {backend: a, hedge: {after_ms: 0}}\n", registry)
    assert errors == ["models.m.hedge.after_ms: Input should be greater than 0"]


def test_balance_over_backends_checks_weights(registry: PluginRegistry) -> None:
    text = POOL + "models:\n  m: {backend: [a, b], balance: {strategy: weighted, weights: [1, 2, 3]}}\n"
    assert errors_of(text, registry) == ["models.m.balance.weights: 3 weights for 2 backends"]


def test_a_valid_split_compiles_to_variant_routes(registry: PluginRegistry) -> None:
    policy = compile_text(
        POOL
        + """
models:
  gpt:
    backend: a
    model: v1
    fallback: [other]
    sticky: key
    split:
      - {weight: 95}
      - {backend: b, model: v2, weight: 5, name: canary}
  other: {backend: b}
""",
        registry,
    )
    route = policy.routes["gpt"]  # type: ignore[attr-defined]
    assert isinstance(route.split, SplitSpec)
    assert [(v.backend, v.upstream_model, v.variant, v.fallback) for v in route.split.variants] == [
        ("a", "v1", "v1", ("other",)),
        ("b", "v2", "canary", ("other",)),
    ]
    assert route.split.backends() == {"a", "b"}


def test_balance_and_health_need_urls(registry: PluginRegistry) -> None:
    for extra in ("balance: {strategy: ewma}", "health: {interval_s: 1}"):
        text = f'backends:\n  a: {{url: "http://x/v1", {extra}}}\nmodels:\n  m: {{backend: a}}\n'
        assert errors_of(text, registry) == [
            "backends.a: 'balance' and 'health' apply to replicas: give 'urls' instead of 'url'"
        ]
