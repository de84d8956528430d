"""Small SVG charts drawn by hand (no plotting dependency): lines, scatter points and horizontal bars.

Inline charts carry no ``xmlns`` (HTML5 does not need one), so the report holds no URL at all;
``standalone=True`` adds it for the ``.svg`` files written next to the report.
"""

from __future__ import annotations

import math
from html import escape

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
W, H = 640, 360
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 34, 44
Series = dict[str, list[tuple[float, float]]]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / n
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 5, 10) if step * m >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.3g}"


def _open(title: str, standalone: bool, height: int = H) -> list[str]:
    ns = ' xmlns="http://www.w3.org/2000/svg"' if standalone else ""
    return [
        f'<svg{ns} viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" font-family="sans-serif" '
        f'font-size="11"><title>{escape(title)}</title>',
        f'<text x="{W / 2}" y="18" text-anchor="middle" font-size="13" font-weight="bold">{escape(title)}</text>',
    ]


class _Frame:
    """Data bounds and ticks mapped onto the plot area."""

    def __init__(self, points: list[tuple[float, float]]) -> None:
        x0, x1 = min(p[0] for p in points), max(p[0] for p in points)
        y0, y1 = min(0.0, min(p[1] for p in points)), max(p[1] for p in points)
        self.xt, self.yt = _ticks(x0, x1), _ticks(y0, y1)
        self.x0, self.x1 = min(x0, self.xt[0]), max(x1, self.xt[-1])
        self.y0, self.y1 = min(y0, self.yt[0]), max(y1, self.yt[-1])
        self.pw, self.ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def sx(self, x: float) -> float:
        return LEFT + (x - self.x0) / ((self.x1 - self.x0) or 1) * self.pw

    def sy(self, y: float) -> float:
        return TOP + self.ph - (y - self.y0) / ((self.y1 - self.y0) or 1) * self.ph

    def axes(self, xlabel: str, ylabel: str) -> list[str]:
        pw, ph = self.pw, self.ph
        out = [f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>']
        for t in self.xt:
            x = self.sx(t)
            out.append(
                f'<line x1="{x:.1f}" y1="{TOP + ph}" x2="{x:.1f}" y2="{TOP + ph + 4}" stroke="#666"/>'
                f'<text x="{x:.1f}" y="{TOP + ph + 16}" text-anchor="middle">{_fmt(t)}</text>'
            )
        for t in self.yt:
            y = self.sy(t)
            out.append(
                f'<line x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + pw}" y2="{y:.1f}" stroke="#eee"/>'
                f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>'
            )
        out.append(f'<text x="{LEFT + pw / 2}" y="{H - 8}" text-anchor="middle">{escape(xlabel)}</text>')
        out.append(
            f'<text transform="translate(14 {TOP + ph / 2}) rotate(-90)" text-anchor="middle">{escape(ylabel)}</text>'
        )
        return out


def chart(
    series: Series, title: str, xlabel: str, ylabel: str, *, scatter: bool = False, standalone: bool = False
) -> str:
    """A line (or scatter) chart of one or more named series of (x, y) points, with a legend."""
    points = [p for pts in series.values() for p in pts if all(math.isfinite(v) for v in p)]
    out = _open(title, standalone)
    if not points:
        out.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle">no data</text></svg>')
        return "\n".join(out)
    frame = _Frame(points)
    out += frame.axes(xlabel, ylabel)
    for i, (name, pts) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        coords = [(frame.sx(x), frame.sy(y)) for x, y in pts if math.isfinite(x) and math.isfinite(y)]
        if scatter:
            out.extend(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2" fill="{color}" fill-opacity="0.6"/>' for x, y in coords
            )
        elif coords:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
            out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
            if len(coords) < 30:
                out.extend(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color}"/>' for x, y in coords)
        ly = TOP + 12 + 16 * i
        out.append(
            f'<rect x="{W - RIGHT + 10}" y="{ly - 8}" width="10" height="10" fill="{color}"/>'
            f'<text x="{W - RIGHT + 24}" y="{ly + 1}">{escape(name[:20])}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def bars(rows: list[tuple[str, float]], title: str, unit: str, *, standalone: bool = False) -> str:
    """Horizontal bars, one per (label, value)."""
    height = TOP + 20 + 22 * max(1, len(rows))
    out = _open(title, standalone, height)
    top = max((v for _, v in rows), default=0) or 1
    for i, (label, value) in enumerate(rows):
        y = TOP + 10 + 22 * i
        width = (W - 260) * value / top
        out.append(
            f'<text x="180" y="{y + 12}" text-anchor="end">{escape(label[:28])}</text>'
            f'<rect x="186" y="{y}" width="{width:.1f}" height="16" fill="{COLORS[0]}"/>'
            f'<text x="{190 + width:.1f}" y="{y + 12}">{value:.3g} {escape(unit)}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)
