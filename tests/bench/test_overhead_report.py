"""The overhead harness's report of the cost-and-capacity budget, and its before/after baseline worktree."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from benchmarks import report
from benchmarks.harness import baseline_worktree, remove_worktree
from benchmarks.report import Scenario


def _row(target: str, scenario: str, cpu: float) -> dict[str, object]:
    return {"target": target, "scenario": scenario, "cpu_us_per_req": cpu}


def test_the_capacity_budget_is_judged_in_its_own_scenario_with_baselines_beside_it() -> None:
    rows = [
        _row("reference", "chat c=64", 100.0),
        _row("chaperone-empty", "chat c=64", 119.0),
        _row("chaperone-money", "chat c=64", 190.0),
        _row("chaperone-money@main", "chat c=64", 210.0),
        _row("reference", "chat c=16", 100.0),
        _row("chaperone-empty", "chat c=16", 130.0),
        _row("chaperone-money", "chat c=16", 150.0),  # another scenario: not what the budget is about
    ]
    found = {(c["target"], c["scenario"]): c for c in report.capacity(rows)}
    assert set(found) == {(t, "chat c=64") for t in ("chaperone-empty", "chaperone-money", "chaperone-money@main")}
    assert found["chaperone-empty", "chat c=64"]["pass"] is True
    assert found["chaperone-money", "chat c=64"]["pass"] is False
    assert found["chaperone-money", "chat c=64"]["ratio"] == pytest.approx(1.9)
    scenarios = [Scenario("chat c=64", False, 64, 1000, 16), Scenario("chat c=16", False, 16, 1000, 16)]
    text = report.verdict_text(report.verdicts(rows, scenarios), None)
    assert "chaperone-money in chat c=64: 1.90x (limit 1.8x) → **FAIL**" in text
    assert "chaperone-money@main in chat c=64: 2.10x (limit 1.8x) → **FAIL**" in text
    assert "chaperone-empty in chat c=64: 1.19x (limit 1.2x) → **PASS**" in text
    assert "aiohttp" not in text  # no aiohttp-only relay in this run: nothing to set beside it


def test_the_aiohttp_only_relay_is_set_beside_each_budget_verdict_not_instead() -> None:
    rows = [
        _row("reference", "chat c=64", 80.0),
        _row("reference-aiohttp", "chat c=64", 160.0),
        _row("chaperone-empty", "chat c=64", 112.0),
    ]
    scenarios = [Scenario("chat c=64", False, 64, 1000, 16)]
    text = report.verdict_text(report.verdicts(rows, scenarios), None)
    assert "chaperone-empty in chat c=64: 1.40x (limit 1.2x) → **FAIL** (0.70x reference-aiohttp" in text


def test_the_metered_floor_is_set_beside_each_budget_verdict() -> None:
    rows = [
        _row("reference", "chat c=64", 80.0),
        _row("reference-metered", "chat c=64", 96.0),
        _row("chaperone-empty", "chat c=64", 112.0),
    ]
    found = report.capacity(rows)[0]
    assert found["ratio"] == pytest.approx(1.4)
    assert found["ratio_metered"] == pytest.approx(112 / 96)
    assert found["floor"] == pytest.approx(1.2)
    text = report.verdict_text(report.verdicts(rows, [Scenario("chat c=64", False, 64, 1000, 16)]), None)
    assert "1.40x (limit 1.2x) → **FAIL** (1.17x reference-metered, itself 1.20x the reference)" in text


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return done.stdout


def test_a_baseline_is_checked_out_beside_the_run_and_removed_after(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "code.py").write_text("VERSION = 1\n")
    _git(repo, "add", "code.py")
    _git(repo, "commit", "-qm", "one")
    (repo / "code.py").write_text("VERSION = 2\n")
    _git(repo, "commit", "-qam", "two")
    work = tmp_path / "run"
    work.mkdir()
    tree = baseline_worktree("HEAD~1", work, repo)
    assert (tree / "code.py").read_text() == "VERSION = 1\n"  # the revision asked for, not the checkout's
    remove_worktree(tree, repo)
    assert not tree.exists() and str(tree) not in _git(repo, "worktree", "list")
    with pytest.raises(RuntimeError, match="--baseline no-such-rev: git worktree add failed"):
        baseline_worktree("no-such-rev", work, repo)
