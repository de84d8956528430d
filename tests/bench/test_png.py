"""PNG plots beside the SVG charts (the ``bench`` extra), and what a run writes when matplotlib is missing."""

from __future__ import annotations

import json
import re
import struct
import sys
from pathlib import Path

import pytest

from bench import png
from tests.bench.test_cli import COMMON, Structure, bench

CHARTS = {"cdf_ttfc", "cdf_e2e", "cdf_itl", "ttft_over_time"}
KNEES = {"knee_ttfc", "knee_e2e"}


def image_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG signature and IHDR chunk (the first 24 bytes), checking both."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG: {head[:8]!r}"
    assert head[12:16] == b"IHDR", f"{path.name}: no IHDR chunk first"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def run(mock_url: str, out: Path, command: str = "run", *extra: str) -> str:
    code, stdout = bench(
        command, "--target", f"direct={mock_url}", *COMMON, "--mock-fault", "latency_ms=5", *extra, "--out", str(out)
    )
    assert code == 0
    return stdout


def test_a_run_writes_a_png_beside_each_svg_chart(
    mock_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    run(mock_url, tmp_path, "run", "--concurrency", "2", "--requests", "12")
    assert png.MISSING not in capsys.readouterr().err
    pngs = {p.stem for p in tmp_path.glob("*.png")}
    assert pngs == {p.stem for p in tmp_path.glob("*.svg")} == CHARTS
    for name in pngs:
        path = tmp_path / f"{name}.png"
        assert image_size(path) == (png.WIDTH_PX, png.HEIGHT_PX)
        assert 8_000 < path.stat().st_size < 2_000_000, (name, path.stat().st_size)  # drawn, not blank or huge
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sorted(manifest["png"]["written"]) == sorted(f"{n}.png" for n in CHARTS)
    assert manifest["png"]["skipped"] is None
    html = (tmp_path / "report.html").read_text()
    parser = Structure()
    parser.feed(html)
    assert parser.fetching == [] and "img" not in parser.tags  # the report stays one file: inline SVG, no PNG
    assert set(re.findall(r"https?://[\w.:/-]+", html)) <= {mock_url}  # the target, as text in the manifest


def test_a_sweep_plots_the_knee_as_png(mock_url: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    run(mock_url, tmp_path, "sweep", "--levels", "1,4", "--requests", "8")
    assert {p.stem for p in tmp_path.glob("*.png")} == CHARTS | KNEES
    for name in KNEES:
        assert image_size(tmp_path / f"{name}.png") == (png.WIDTH_PX, png.HEIGHT_PX)


def test_without_matplotlib_everything_else_is_written_and_one_line_says_why(
    mock_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)  # every import of it fails, as if it were not installed
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    stdout = run(mock_url, tmp_path, "run", "--concurrency", "2", "--requests", "8")
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if "PNG" in line] == [f"bench: {png.MISSING}"]
    assert "pip install 'chaperone[bench]'" in png.MISSING
    assert not list(tmp_path.glob("*.png"))
    names = {p.name for p in tmp_path.iterdir()}
    assert {"results.jsonl", "summary.json", "summary.csv", "manifest.json", "report.html"} <= names
    assert {f"{n}.svg" for n in CHARTS} <= names
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["png"] == {"written": [], "skipped": png.MISSING}
    assert json.loads((tmp_path / "summary.json").read_text())["targets"]["direct"]["completed"] > 0
    assert "artifacts:" in stdout
