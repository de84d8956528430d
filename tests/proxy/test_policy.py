"""Policy files: ${ENV} expansion, every mistake named by its YAML path, keys, routes and `chaperone check`."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from proxy.errors import Forbidden, ModelNotFound, Unauthorized
from proxy.policy import Policy, PolicyError, compile_policy_text, load_policy, substitute_env
from proxy.registry import PluginRegistry

CHAPERONE = Path(sys.executable).with_name("chaperone")


def compile_yaml(text: str, registry: PluginRegistry, env: dict[str, str] | None = None) -> Policy:
    return compile_policy_text(textwrap.dedent(text), registry, env=env or {})


def errors_of(text: str, registry: PluginRegistry, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(PolicyError) as info:
        compile_yaml(text, registry, env)
    return info.value.errors


MINIMAL = """
backends:
  up: {url: "http://127.0.0.1:9/v1"}
models:
  gpt: {backend: up}
"""

# ---- ${ENV} ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${KEY}", {"KEY": "sk-1"}, "sk-1"),
        ("${KEY}", {"KEY": ""}, ""),
        ("a-${KEY}-b-${KEY}", {"KEY": "x"}, "a-x-b-x"),
        ("${KEY:-fallback}", {}, "fallback"),
        ("${KEY:-fallback}", {"KEY": ""}, "fallback"),  # as in the shell, empty counts as unset
        ("${KEY:-fallback}", {"KEY": "set"}, "set"),
        ("${KEY:-}", {}, ""),
        ("${KEY:+word}", {"KEY": "anything"}, "word"),
        ("${KEY:+word}", {"KEY": ""}, ""),
        ("${KEY:+word}", {}, ""),
        ("$$", {}, "$"),
        ("cost: $$5", {}, "cost: $5"),
        ("$${KEY}", {"KEY": "x"}, "${KEY}"),  # an escaped reference stays literal
        ("$5 and $HOME", {}, "$5 and $HOME"),  # only ${...} and $$ are special
    ],
)
def test_substitute_env(text: str, env: dict[str, str], expected: str) -> None:
    assert substitute_env(text, env, "x") == expected


def test_env_values_land_in_the_compiled_policy(registry: PluginRegistry) -> None:
    text = """
    backends:
      up:
        url: ${UP_URL:-http://127.0.0.1:9/v1}
        api_key: ${KEY}
        timeout_s: ${TIMEOUT:-5}
        headers: {x-price: "$$5", x-flag: "${FLAG:+on}"}
    models:
      gpt: {backend: up, model: "${UPSTREAM_MODEL:-gpt-4o-mini}"}
    """
    policy = compile_yaml(text, registry, {"KEY": "sk-1"})
    up = policy.backends["up"]
    assert (up.url, up.api_key, up.timeout_s) == ("http://127.0.0.1:9/v1", "sk-1", 5.0)
    assert up.headers == {"x-price": "$5", "x-flag": ""}
    assert policy.routes["gpt"].upstream_model == "gpt-4o-mini"

    policy = compile_yaml(text, registry, {"KEY": "sk-2", "UP_URL": "https://llm.internal/v1", "FLAG": "1"})
    assert policy.backends["up"].url == "https://llm.internal/v1"
    assert policy.backends["up"].headers["x-flag"] == "on"


def test_a_missing_variable_names_its_yaml_path(registry: PluginRegistry) -> None:
    text = """
    backends:
      up: {url: "http://127.0.0.1:9/v1", api_key: "${SECRET_KEY}"}
    models:
      gpt: {backend: up}
    chains:
      default:
        - headers: {request: {set: {x-team: "${TEAM}"}}}
    """
    assert errors_of(text, registry) == [
        "backends.up.api_key: environment variable SECRET_KEY is not set (use ${SECRET_KEY:-default})",
        "chains.default[0].headers.request.set.x-team: environment variable TEAM is not set (use ${TEAM:-default})",
    ]


def test_env_defaults_to_the_process_environment(registry: PluginRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHAPERONE_TEST_KEY", "sk-from-env")
    text = MINIMAL.replace("{url:", '{api_key: "${CHAPERONE_TEST_KEY}", url:')
    policy = compile_policy_text(textwrap.dedent(text), registry)
    assert policy.backends["up"].api_key == "sk-from-env"


# ---- mistakes, each named by its path ------------------------------------------------------------


def test_invalid_yaml_reports_line_and_column(registry: PluginRegistry) -> None:
    (line,) = errors_of("backends:\n  up:\n    url: [x\nmodels: {}\n", registry)
    assert re.match(r"line 4, column \d+: invalid YAML: ", line), line


def test_a_policy_must_be_a_mapping(registry: PluginRegistry) -> None:
    assert errors_of("- just\n- a list\n", registry) == [
        "(top): a policy is a mapping with backends, models and chains"
    ]


def test_unknown_plugin(registry: PluginRegistry) -> None:
    errors = errors_of(MINIMAL + "chains:\n  default: [params, {piii: {}}]\n", registry)
    known = "budget, cache, capture, cost, headers, injection, judge, params, pii, retry, schema"
    assert errors == [f"chains.default[1]: unknown plugin 'piii' (known: {known})"]


def test_bad_plugin_config_names_the_field(registry: PluginRegistry) -> None:
    text = MINIMAL + "chains:\n  default:\n    - headers: {}\n    - params: {clamp: {temperature: {min: low}}}\n"
    (line,) = errors_of(text, registry)
    assert line.startswith("chains.default[1].params.clamp.temperature.min: ")


def test_unknown_field_in_a_backend(registry: PluginRegistry) -> None:
    (line,) = errors_of(MINIMAL.replace("{url:", "{timeout: 5, url:"), registry)
    assert line == "backends.up.timeout: Extra inputs are not permitted"


def test_unknown_backend_in_a_model(registry: PluginRegistry) -> None:
    errors = errors_of(MINIMAL + "  other: {backend: [up, nope]}\n  third: {backend: gone}\n", registry)
    assert errors == [
        "models.other.backend[1]: no backend named 'nope' (have: up)",
        "models.third.backend: no backend named 'gone' (have: up)",
    ]


def test_fallback_to_a_missing_model(registry: PluginRegistry) -> None:
    text = MINIMAL.replace("gpt: {backend: up}", "gpt: {backend: up, fallback: [gpt2, ghost]}\n  gpt2: {backend: up}")
    assert errors_of(text, registry) == ["models.gpt.fallback[1]: no model named 'ghost'"]


def test_key_naming_a_missing_chain(registry: PluginRegistry) -> None:
    text = MINIMAL + "keys:\n  - {name: app, key: sk-1, chain: strict}\n"
    assert errors_of(text, registry) == ["keys[0].chain: no chain named 'strict'"]


def test_default_chain_must_exist(registry: PluginRegistry) -> None:
    text = MINIMAL + "chains: {main: []}\n"
    assert errors_of(text, registry) == ["default_chain: no chain named 'default' (have: main)"]


def test_every_mistake_is_reported_at_once(registry: PluginRegistry) -> None:
    text = MINIMAL + textwrap.dedent(
        """\
          other: {backend: nope}
        chains:
          default: [nope, {params: {forbid: [seed], defaults: {seed: 1}}}]
        keys:
          - {name: app, key: sk-1, models: [unknown-model]}
        """
    )
    errors = errors_of(text, registry)
    assert [e.split(":")[0] for e in errors] == [
        "models.other.backend",
        "chains.default[0]",
        "chains.default[1].params.forbid",
        "keys[0].models[0]",
    ]


def test_the_report_names_the_source_and_the_line(registry: PluginRegistry, tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(MINIMAL + "chains:\n  default:\n    - headers: {}\n    - nope\n")
    line = len(path.read_text().splitlines())  # the last line holds the mistake
    with pytest.raises(PolicyError) as info:
        load_policy(path, registry, env={})
    assert info.value.report() == (
        f"{path}: chains.default[1]: unknown plugin 'nope' "
        f"(known: budget, cache, capture, cost, headers, injection, judge, params, pii, retry, schema) (line {line})"
    )
    with pytest.raises(PolicyError, match="cannot read the file"):
        load_policy(tmp_path / "missing.yaml", registry, env={})


# ---- keys ---------------------------------------------------------------------------------------------

KEYS = (
    MINIMAL
    + """
  small: {backend: up}
chains:
  default: []
  strict: [params]
keys:
  - {name: app1, key: sk-alpha}
  - {name: app2, key: "sha256:%s", chain: strict, models: [small]}
"""
)


@pytest.fixture
def keyed(registry: PluginRegistry) -> Policy:
    digest = hashlib.sha256(b"sk-beta").hexdigest().upper()  # hex digits in either case
    return compile_yaml(KEYS % digest, registry)


def test_keys_authenticate_plain_and_hashed(keyed: Policy) -> None:
    app1 = keyed.authenticate("Bearer sk-alpha")
    assert (app1.name, app1.chain.name, app1.models) == ("app1", "default", None)
    app2 = keyed.authenticate("bearer sk-beta")
    assert (app2.name, app2.chain.name, app2.models) == ("app2", "strict", frozenset({"small"}))
    assert app2.authorization is None  # a keyed caller's own key is never forwarded
    assert not keyed.open


@pytest.mark.parametrize("header", [None, "", "Bearer ", "Bearer sk-wrong", "Basic sk-alpha", "sk-alpha"])
def test_a_missing_or_wrong_key_is_unauthorized(keyed: Policy, header: str | None) -> None:
    with pytest.raises(Unauthorized):
        keyed.authenticate(header)


def test_a_keys_model_list_is_enforced(keyed: Policy) -> None:
    app2 = keyed.authenticate("Bearer sk-beta")
    app2.check_model("small")
    with pytest.raises(Forbidden) as info:
        app2.check_model("gpt")
    assert info.value.param == "model" and info.value.http_status == 403
    keyed.authenticate("Bearer sk-alpha").check_model("gpt")  # no list: every model
    assert keyed.client_models(app2) == ["small"]


def test_a_malformed_hashed_key_is_a_policy_error(registry: PluginRegistry) -> None:
    (line,) = errors_of(KEYS % "abc123", registry)
    assert line.startswith("keys[1].key: ")


def test_an_open_policy_has_no_caller_name(registry: PluginRegistry) -> None:
    policy = compile_yaml(MINIMAL, registry)
    assert policy.open
    caller = policy.authenticate("Bearer sk-anything")
    assert caller.name is None and caller.models is None
    assert caller.authorization == "Bearer sk-anything"  # forwarded when the backend has no key of its own
    assert policy.authenticate(None).name is None


# ---- routes --------------------------------------------------------------------------------------------

ROUTES = """
backends:
  a: {url: "http://127.0.0.1:9/v1", enabled: "${A_ON:+true}"}
  b: {url: "http://127.0.0.1:10/v1"}
  c: {url: "http://127.0.0.1:11/v1", enabled: false}
models:
  first: {backend: [a, b]}
  skip-disabled: {backend: [c, a, b]}
  renamed: {backend: b, model: upstream-name}
"""


def test_a_backend_list_picks_the_first_enabled(registry: PluginRegistry) -> None:
    policy = compile_yaml(ROUTES, registry)  # A_ON unset: enabled is "", which is false
    assert policy.routes["first"].backend == "b"
    assert policy.routes["skip-disabled"].backend == "b"
    policy = compile_yaml(ROUTES, registry, {"A_ON": "1"})
    assert policy.routes["first"].backend == "a"
    assert policy.routes["skip-disabled"].backend == "a"


def test_a_model_with_no_enabled_backend_is_an_error(registry: PluginRegistry) -> None:
    assert errors_of(ROUTES + "  dead: {backend: [c]}\n", registry) == ["models.dead.backend: none of ['c'] is enabled"]


def test_route_for(registry: PluginRegistry) -> None:
    policy = compile_yaml(ROUTES, registry)
    assert policy.route_for("renamed").upstream_model == "upstream-name"
    with pytest.raises(ModelNotFound) as info:
        policy.route_for("gpt-5")
    assert info.value.param == "model" and info.value.http_status == 404
    wildcard = compile_yaml(ROUTES + '  "*": {backend: b}\n', registry)
    assert wildcard.route_for("gpt-5").name == "*"
    assert "*" not in wildcard.client_models(wildcard.authenticate(None))


# ---- chaperone check ---------------------------------------------------------------------------------------


def run_check(*files: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAPERONE_", "OPENAI_"))}
    return subprocess.run(
        [str(CHAPERONE), "check", *map(str, files)], capture_output=True, text=True, env=env, timeout=30, check=False
    )


def test_check_cli_accepts_a_good_file(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text(MINIMAL + "chains:\n  default: [headers, params]\n")
    result = run_check(good)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{good}: ok")
    assert "headers → params" in result.stdout


def test_check_cli_names_the_yaml_path_of_each_mistake(tmp_path: Path) -> None:
    good, bad, worse = tmp_path / "good.yaml", tmp_path / "bad.yaml", tmp_path / "worse.yaml"
    good.write_text(MINIMAL)
    bad.write_text(MINIMAL + "  other: {backend: nope}\n")
    worse.write_text(MINIMAL + "chains:\n  default:\n    - params: {clamp: {temperature: {min: low}}}\n")
    result = run_check(bad, good, worse)
    assert result.returncode == 1
    assert f"{good}: ok" in result.stdout
    assert str(bad) not in result.stdout and str(worse) not in result.stdout
    assert f"{bad}: models.other.backend: no backend named 'nope'" in result.stderr
    assert f"{worse}: chains.default[0].params.clamp.temperature.min: " in result.stderr


def test_check_warns_when_passthrough_lets_a_prompt_skip_the_chains_guards(tmp_path: Path) -> None:
    risky = tmp_path / "risky.yaml"
    risky.write_text(
        MINIMAL + "chains:\n  default: [injection]\npassthrough: {allow: ['GET /*', 'POST /audio/*']}\n"
        "keys:\n  - {name: rt, key: sk-rt, passthrough: ['WS /realtime']}\n"
    )
    result = run_check(risky)
    assert result.returncode == 0, result.stderr  # a warning, not an error
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 2, result.stderr
    assert "passthrough.allow: 'POST /audio/*' forwards POST /audio/speech" in warnings[0]
    assert "(default: injection)" in warnings[0]
    assert "keys[0].passthrough: 'WS /realtime'" in warnings[1]
    unguarded = tmp_path / "unguarded.yaml"
    unguarded.write_text(MINIMAL + "passthrough: {allow: ['POST /*']}\n")
    assert "warning" not in run_check(unguarded).stderr  # nothing to walk around


def test_a_backend_header_or_key_that_http_cannot_carry_is_named(registry: PluginRegistry) -> None:
    env = {"KEY_FROM_FILE": "sk-abc\n"}  # a key read from a file with its newline
    text = """
    backends:
      up: {url: "http://127.0.0.1:9/v1", api_key: "${KEY_FROM_FILE}", headers: {"x team": a, x-ok: "b\\r\\nHost: evil"}}
      two: {url: "http://127.0.0.1:9/v1", api_keys: [sk-1, "sk-2\\n"]}
    models:
      gpt: {backend: up}
    """
    errors = errors_of(text, registry, env)
    assert errors == [
        "backends.up.api_key: the key holds a line break (read from a file with its newline?): it cannot be sent",
        "backends.up.headers: 'x team' is not an HTTP header name (letters, digits and !#$%&'*+-.^_`|~ only)",
        "backends.two.api_keys: key 1 holds a line break (read from a file with its newline?): it cannot be sent",
    ]
