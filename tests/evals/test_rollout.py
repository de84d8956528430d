"""``chaperone rollout``: a route's split weights changed in place, validated, nothing else touched."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from evals.cli import rollout_main
from proxy.policy import load_policy
from proxy.registry import build_registry

POLICY = textwrap.dedent("""\
    # production routes; the canary takes a slice of the traffic
    backends:
      stable: {url: "http://127.0.0.1:9/v1"}
      canary:
        url: ${CANARY_URL:-http://127.0.0.1:10/v1}   # the new adapter
    models:
      chat:
        backend: stable
        sticky: user
        split:
          - {weight: 95, name: current}      # keep
          - backend: canary
            model: "ft:v2"
            weight: 5    # was 1 last week
            name: candidate
    chains:
      default: []
""")


@pytest.fixture
def policy(tmp_path: Path) -> Path:
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    path.chmod(0o640)
    return path


def weights(path: Path) -> list[float]:
    route = load_policy(path, build_registry(entry_points=False)).routes["chat"]
    split = getattr(route, "split", None)
    assert split is not None
    return list(split.weights)


def test_only_the_weights_change(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert rollout_main([str(policy), "chat", "--weight", "candidate=25"]) == 0
    expected = POLICY.replace("weight: 5    # was 1", "weight: 25    # was 1")
    assert policy.read_text() == expected  # comments, quotes, ${...} and layout byte for byte
    assert policy.stat().st_mode & 0o777 == 0o640
    assert "candidate 25 (21%)" in capsys.readouterr().out
    assert rollout_main([str(policy), "chat", "--promote", "candidate"]) == 0
    assert policy.read_text() == expected.replace("weight: 95,", "weight: 0,").replace("weight: 25 ", "weight: 100 ")
    assert not list(policy.parent.glob(".*.tmp"))


def test_refused_edits_leave_the_file_alone(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, message in (
        (["--weight", "nobody=3"], "no variant 'nobody' (variants: current, candidate)"),
        (["--weight", "candidate=-1"], "must be >= 0"),
        (["--weight", "candidate=0", "--weight", "current=0"], "every weight would be 0"),
        (["--weight", "candidate"], "expected VARIANT=WEIGHT"),
        (["--promote", "candidate", "--weight", "current=1"], "not both"),
    ):
        assert rollout_main([str(policy), "chat", *argv]) == 2
        assert message in capsys.readouterr().err
    assert rollout_main([str(policy), "nochat", "--weight", "a=1"]) == 2
    assert "no model route 'nochat'" in capsys.readouterr().err
    assert policy.read_text() == POLICY


def test_dry_run_and_a_policy_that_does_not_compile(policy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert rollout_main([str(policy), "chat", "--weight", "candidate=50", "--dry-run"]) == 0
    assert policy.read_text() == POLICY and "dry run" in capsys.readouterr().out
    broken = policy.with_name("broken.yaml")
    broken.write_text(POLICY.replace("backend: stable", "backend: missing"))
    assert rollout_main([str(broken), "chat", "--weight", "candidate=50"]) == 2
    assert "does not compile as it is" in capsys.readouterr().err


def test_the_edited_policy_compiles_with_the_new_shares(policy: Path) -> None:
    assert rollout_main([str(policy), "chat", "--weight", "current=50", "--weight", "candidate=50"]) == 0
    assert weights(policy) == [50, 50]
