"""PNG copies of the report's charts (``NAME.png`` beside ``NAME.svg``), drawn with matplotlib's Agg backend.

matplotlib is optional (``pip install 'chaperone[bench]'``): without it ``write`` draws nothing and
returns ``None``, and the caller says so. The series are ``report.charts``', the ones the SVG charts
are drawn from. No pyplot and no global backend switch: each figure gets its own Agg canvas, so no
display is needed and nothing leaks into a program that imports this module.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

from bench import svg
from bench.report import Chart

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MISSING = "PNG plots not written: they need matplotlib (pip install 'chaperone[bench]')"
WIDTH_PX, HEIGHT_PX, DPI = 960, 540, 120


def write(out: Path, charts: dict[str, Chart]) -> list[str] | None:
    """Draw every chart to ``out/NAME.png``; the file names written, or ``None`` without matplotlib."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    written: list[str] = []
    for name, chart in charts.items():
        fig = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, layout="constrained")
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        if _draw(ax, chart):
            fig.legend(loc="outside right upper", fontsize="small", frameon=False)
        path = out / f"{name}.png"
        fig.savefig(path, format="png", metadata={"Software": None})  # no version string (and its URL) inside
        written.append(path.name)
    return written


def _draw(ax: Axes, chart: Chart) -> bool:
    """Plot every series of ``chart`` on ``ax``; whether any point was drawn (else the axes say "no data")."""
    ax.set_title(chart.title, fontsize="medium", fontweight="bold")
    ax.set_xlabel(chart.xlabel)
    ax.set_ylabel(chart.ylabel)
    ax.grid(True, color="#eeeeee")
    lowest = math.inf
    for i, (label, points) in enumerate(chart.series.items()):
        finite = [(x, y) for x, y in points if math.isfinite(x) and math.isfinite(y)]
        if not finite:
            continue
        xs, ys = [p[0] for p in finite], [p[1] for p in finite]
        lowest = min(lowest, *ys)
        color = svg.COLORS[i % len(svg.COLORS)]
        if chart.scatter:
            ax.scatter(xs, ys, s=8, color=color, alpha=0.6, label=label[:20])
        else:
            marker = "o" if len(finite) < 30 else None  # a sweep's few levels show as points, a CDF as a line
            ax.plot(xs, ys, color=color, linewidth=2, marker=marker, markersize=4, label=label[:20])
    if lowest == math.inf:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center")
        return False
    ax.set_ylim(bottom=min(0.0, lowest))  # like the SVG charts: the y axis starts at zero
    return True
