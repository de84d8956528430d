"""``bench compare``: differences with noise-aware verdicts, and gates a CI job can rely on."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.stats import distribution


def summary(ttft_ms: float, rps: float, n: int = 400, jitter: float = 0.1, seed: int = 0) -> dict[str, Any]:
    rng = random.Random(seed)
    return of([ttft_ms * (1 + rng.uniform(-jitter, jitter)) for _ in range(n)], rps)


def of(values: list[float], rps: float) -> dict[str, Any]:
    n = len(values)
    figures = {m: distribution(values) for m in ("ttft_ms", "ttfc_ms", "itl_ms", "tpot_ms", "e2e_ms")}
    return {
        "targets": {
            "t": {
                **figures,
                "requests_per_s": rps,
                "output_tokens_per_s": rps * 100,
                "error_rate": 0.0,
                "completed": n,
                "errors": 0,
            }
        }
    }


def write(tmp_path: Path, name: str, data: dict[str, Any]) -> Path:
    path = tmp_path / name
    path.mkdir()
    (path / "summary.json").write_text(json.dumps(data))
    return path


def run(tmp_path: Path, a: dict[str, Any], b: dict[str, Any], *gates: str) -> int:
    args = ["compare", str(write(tmp_path, "a", a)), str(write(tmp_path, "b", b))]
    for gate in gates:
        args += ["--fail-if", gate]
    return main(args)


def test_a_regression_fails_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, summary(100, 50), summary(130, 50, seed=1), "p99_ttft>+10%") == 1
    out = capsys.readouterr().out
    assert "| t | ttft_ms.p99 |" in out and "worse" in out and "FAIL" in out


def test_no_regression_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(tmp_path, summary(100, 50), summary(101, 50, seed=1), "p99_ttft>+10%", "rps<-5%") == 0
    assert "within noise" in capsys.readouterr().out


def test_a_change_past_the_threshold_but_within_noise_passes_unless_strict(tmp_path: Path) -> None:
    spread = [50.0 + 10 * i for i in range(12)]  # few samples, widely spread: wide intervals
    a, b = of(spread, 50), of([v * 1.15 for v in spread], 50)  # every value 15 % slower
    assert run(tmp_path, a, b, "p50_ttft>+10%") == 0
    args = ["compare", str(tmp_path / "a"), str(tmp_path / "b"), "--fail-if", "p50_ttft>+10%", "--strict"]
    assert main(args) == 1


def test_throughput_gates_and_absolute_thresholds(tmp_path: Path) -> None:
    assert run(tmp_path, summary(100, 50), summary(100, 40), "output_tokens_per_s<-10%") == 1
    (tmp_path / "a").rename(tmp_path / "a1")
    (tmp_path / "b").rename(tmp_path / "b1")
    assert run(tmp_path, summary(100, 50), summary(150, 50, seed=1), "p50_ttft>+20ms") == 1


@pytest.mark.parametrize(("gate", "message"), [("p99_ttft>>1", "expected METRIC>+10%")])
def test_a_bad_gate_or_file_is_exit_2(
    tmp_path: Path, gate: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tmp_path, summary(1, 1), summary(1, 1), gate) == 2
    assert message in capsys.readouterr().err
    (tmp_path / "junk.json").write_text("[]")
    assert main(["compare", str(tmp_path / "junk.json"), str(tmp_path / "b")]) == 2
    assert "not a chaperone bench summary" in capsys.readouterr().err
