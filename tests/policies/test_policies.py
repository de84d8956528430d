"""Every shipped policy loads; every broken fixture fails with the YAML path written on its first line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from proxy.policy import PolicyError, load_policy
from proxy.registry import PluginRegistry
from proxy.settings import DEFAULT_POLICY, PACKAGE_POLICIES

SHIPPED = sorted([DEFAULT_POLICY, *PACKAGE_POLICIES.glob("*.yaml")])  # the default ships inside the package
BROKEN = sorted((Path(__file__).parent / "broken").glob("*.yaml"))
REQUIRED_VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}")  # ${VAR} without a :- or :+ default


def test_there_are_policies_and_fixtures() -> None:
    assert DEFAULT_POLICY in SHIPPED
    assert len(BROKEN) >= 10


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_policy_loads(path: Path, registry: PluginRegistry) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#"), f"{path.name} should open with a comment saying what it is for"
    env = {name: f"test-{name.lower()}" for name in REQUIRED_VAR.findall(text)}
    policy = load_policy(path, registry, env=env)
    assert policy.routes
    assert policy.default_chain.name in policy.chains


def test_default_policy_routes_to_openai_when_a_key_is_set(registry: PluginRegistry) -> None:
    policy = load_policy(DEFAULT_POLICY, registry, env={"OPENAI_API_KEY": "sk-test"})
    assert policy.route_for("gpt-4o-mini").backend == "openai"
    openai = policy.backends["openai"]
    assert (openai.url, openai.api_key, openai.enabled) == ("https://api.openai.com/v1", "sk-test", True)
    assert policy.open


def test_default_policy_routes_to_the_mock_without_a_key_or_local_model(registry: PluginRegistry) -> None:
    policy = load_policy(DEFAULT_POLICY, registry, env={"CHAPERONE_LOCAL_MODEL": "off"})
    assert policy.route_for("anything").backend == "mock"
    assert policy.backends["mock"].builtin == "mock"
    assert policy.backends["openai"].enabled is False
    assert [step.name for step in policy.default_chain.steps] == ["headers", "params"]


def test_default_policy_upstream_url_can_be_overridden(registry: PluginRegistry) -> None:
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_UPSTREAM_URL": "http://127.0.0.1:8001/v1"}
    assert load_policy(DEFAULT_POLICY, registry, env=env).backends["openai"].url == "http://127.0.0.1:8001/v1"


def expectation(path: Path) -> str:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    match = re.fullmatch(r"# expect: (.+)", first)
    assert match, f"{path.name}: the first line must be '# expect: <yaml path or message>'"
    return match.group(1).strip()


@pytest.mark.parametrize("path", BROKEN, ids=lambda p: p.name)
def test_broken_policy_fails_naming_the_yaml_path(path: Path, registry: PluginRegistry) -> None:
    expect = expectation(path)
    with pytest.raises(PolicyError) as info:
        load_policy(path, registry, env={})
    assert len(info.value.errors) == 1, info.value.errors  # one mistake per fixture
    (line,) = info.value.errors
    assert line.startswith(expect), f"expected {expect!r}, got {line!r}"
    assert info.value.report().startswith(f"{path}: {expect}")


def test_chaperone_check_accepts_every_shipped_policy() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHAPERONE_", "OPENAI_"))}
    result = subprocess.run(
        [str(Path(sys.executable).with_name("chaperone")), "check", *map(str, SHIPPED)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(": ok (") == len(SHIPPED)
