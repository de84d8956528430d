"""``chaperone bench`` end to end: two targets side by side (direct mock vs Chaperone), the artifacts, the
offline report, Ctrl-C, a sweep and bad options."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
import types
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from proxy.cli import main as cli_main

COMMON = ["--model", "mock-gpt", "--mock", "--input-tokens", "32", "--output-tokens", "8", "-q"]


def bench(*args: str) -> tuple[int, str]:
    """``chaperone bench ARGS`` in this process (a fresh event loop of its own); exit status and stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(["bench", *args])
    return code, out.getvalue()


class Structure(HTMLParser):
    """Tags, and every attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.fetching: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("src", "href", "xlink:href", "srcset", "action", "data") or "url(" in (value or ""):
                self.fetching.append((name, value or ""))


@pytest.fixture(scope="module")
def two_targets(mock_url: str, proxy_url: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("run")
    code, stdout = bench(
        "run",
        "--target",
        f"direct={mock_url}",
        "--target",
        f"chaperone={proxy_url}",
        *COMMON,
        "--mock-fault",
        "latency_ms=10,chunk_delay_ms=2",
        "--concurrency",
        "4",
        "--requests",
        "40",
        "--injection-share",
        "0.2",
        "--cache-share",
        "0.2",
        "--goodput",
        "ttft:2000",
        "--api-key",
        "sk-secret-123",
        "--seed",
        "3",
        "--out",
        str(out),
    )
    assert code == 0
    return out, stdout


def test_two_targets_run_the_same_workload_side_by_side(two_targets: tuple[Path, str]) -> None:
    out, stdout = two_targets
    summary = json.loads((out / "summary.json").read_text())
    direct, chap = summary["targets"]["direct"], summary["targets"]["chaperone"]
    for s in (direct, chap):
        for metric in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
            assert {"p50", "p90", "p99", "mean"} <= set(s[metric])
        assert {"output_tokens_per_s", "requests_per_s", "completed", "errors"} <= set(s)
    # the same seeded workload: the mock answers injection attempts, Chaperone's guard refuses them
    assert direct["by_kind"].keys() == chap["by_kind"].keys()
    assert direct["errors"] == 0
    assert set(chap["errors_by_kind"]) == {"http_400:prompt_injection_detected"}
    kinds = chap["by_kind"]
    assert kinds["injection"]["sent"] > 0 and kinds["injection"]["completed"] == 0
    assert kinds["plain"]["completed"] == kinds["plain"]["sent"]  # (repeats of an attempt are refused too)
    diff = summary["differences"]
    assert diff["baseline"] == "direct" and "ttft_ms.p99" in diff["targets"]["chaperone"]
    assert "| metric | direct | chaperone |" in stdout and "chaperone - direct: added ttft p50" in stdout
    assert "tpot_ms: time per output token" in stdout  # definitions printed


def test_the_proxy_reports_its_own_time_per_plugin(two_targets: tuple[Path, str]) -> None:
    summary = json.loads((two_targets[0] / "summary.json").read_text())
    assert summary["targets"]["direct"]["gateway"] is None  # the mock has no Chaperone /metrics
    gw = summary["targets"]["chaperone"]["gateway"]
    assert gw["requests"] >= 40 and gw["plugin_timing"] is True
    assert {"params", "headers", "injection"} <= set(gw["plugins_ms_per_request"])
    assert gw["plugins_ms_per_request"]["injection"]["on_request"] > 0
    assert gw["cpu_ms_per_request"] > 0
    assert gw["cache_lookups"].get("hit", 0) >= 1  # the repeated prompts were answered from the cache


def test_artifacts_and_manifest(two_targets: tuple[Path, str]) -> None:
    out, _ = two_targets
    lines = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 80 and {r["target"] for r in lines} == {"direct", "chaperone"}
    assert all(r["ok"] == (r["error"] is None) for r in lines)
    rows = list(csv.DictReader((out / "summary.csv").read_text().splitlines()))
    assert [r["target"] for r in rows] == ["direct", "chaperone"] and rows[0]["ttft_ms.p99"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["seed"] == 3 and manifest["machine"]["cpus"] >= 1 and manifest["version"]
    assert manifest["workload"]["injection_share"] == 0.2 and manifest["load"]["concurrency"] == 4
    data = b"".join(p.read_bytes() for p in out.iterdir())
    assert b"sk-secret-123" not in data  # the key is never written
    assert {p.name for p in out.glob("*.svg")} >= {"cdf_ttfc.svg", "cdf_e2e.svg", "cdf_itl.svg", "ttft_over_time.svg"}


def test_the_html_report_works_offline(two_targets: tuple[Path, str], mock_url: str, proxy_url: str) -> None:
    html = (two_targets[0] / "report.html").read_text()
    parser = Structure()
    parser.feed(html)
    assert parser.fetching == []
    assert "script" not in parser.tags and "link" not in parser.tags and "img" not in parser.tags
    assert parser.tags.count("svg") >= 4 and parser.tags.count("table") >= 2
    urls = set(re.findall(r"https?://[\w.:/-]+", html))
    assert urls <= {mock_url, proxy_url}, urls  # only the targets, as text in the manifest
    assert "time per output token" in html and "chaperone - direct" in html


def test_ctrl_c_writes_a_valid_partial_summary(mock_url: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    argv = [
        sys.executable,
        "-m",
        "proxy.cli",
        "bench",
        "run",
        "--target",
        mock_url,
        *COMMON,
        "--mock-fault",
        "chunk_delay_ms=20",
        "--concurrency",
        "2",
        "--duration",
        "60",
        "--out",
        str(tmp_path),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    base = mock_url.removesuffix("/v1")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the mock has answered a few of this run's requests
        with urllib.request.urlopen(base + "/_mock/requests") as resp:
            seen = [r for r in json.load(resp) if "chunk_delay_ms=20" in json.dumps(r)]
        if len([r for r in seen if r.get("outcome") == "completed"]) >= 6:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["interrupted"] is True and summary["targets"]["target"]["sent"] >= 6
    assert json.loads((tmp_path / "manifest.json").read_text())["interrupted"] is True
    assert "partial results" in (tmp_path / "report.html").read_text()


def test_a_concurrency_sweep_plots_throughput_against_latency(mock_url: str, tmp_path: Path) -> None:
    code, stdout = bench(
        "sweep",
        "--target",
        mock_url,
        *COMMON,
        "--mock-fault",
        "latency_ms=5",
        "--levels",
        "1,4",
        "--requests",
        "16",
        "--out",
        str(tmp_path),
    )
    assert code == 0
    series: list[dict[str, Any]] = json.loads((tmp_path / "sweep.json").read_text())
    assert [level["level"] for level in series] == [1, 4]
    rps = [level["summary"]["targets"]["target"]["requests_per_s"] for level in series]
    assert rps[1] > rps[0]  # four clients against a 5 ms server get more done than one
    assert "knee_ttfc.svg" in {p.name for p in tmp_path.iterdir()}
    assert "| concurrency 4 | target |" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--concurrency", "0", "--requests", "1"], "--concurrency must be at least 1"),
        (["--concurrency", "1"], "give --requests or --duration"),
        (["--rate", "5", "--requests", "1", "--goodput", "speed:1"], "unknown metric 'speed'"),
        (["--concurrency", "1", "--requests", "1", "--warmup", "x"], "warm-up/cool-down must be like"),
        (["--concurrency", "1", "--requests", "1", "--launch", "vllm"], "--launch needs --policy FILE"),
    ],
)
def test_bad_options_are_refused_with_a_clear_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["run", "--target", "http://127.0.0.1:9/v1", "--model", "m", *args])
    assert code == 2
    assert message in capsys.readouterr().err


def test_launch_runs_the_benchmark_inside_the_launchers_hook(
    mock_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []

    @contextlib.contextmanager
    def bench_engine(policy: Path, backend: str) -> Iterator[dict[str, Any]]:
        events.append(f"start {backend} from {policy.name}")
        yield {"command": ["engine", "--port", "1"], "url": mock_url}
        events.append("stop")

    monkeypatch.setitem(sys.modules, "backends.launch", types.SimpleNamespace(bench_engine=bench_engine))
    code, _ = bench(
        "run",
        "--target",
        mock_url,
        *COMMON,
        "--concurrency",
        "1",
        "--requests",
        "2",
        "--launch",
        "local",
        "--policy",
        "p.yaml",
        "--out",
        str(tmp_path),
    )
    assert code == 0 and events == ["start local from p.yaml", "stop"]
    assert json.loads((tmp_path / "manifest.json").read_text())["engine"]["command"] == ["engine", "--port", "1"]
