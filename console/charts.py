"""SVG charts drawn on the server: a bar series over time and a request's step waterfall (no script needed)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from html import escape

from markupsafe import Markup


def bars(values: Sequence[float], starts: Sequence[float], *, title: str, unit: str = "", width: int = 560,
         height: int = 140) -> Markup:  # fmt: skip
    """A bar per time slot (``starts`` are epoch seconds), with the peak and the first/last times labelled."""
    top = max(values, default=0) or 1.0
    n = max(len(values), 1)
    slot = (width - 40) / n
    parts = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">',
        f'<text x="4" y="12" class="t">{escape(title)} (peak {_fmt(top)}{escape(unit)})</text>',
    ]
    base = height - 18
    for i, value in enumerate(values):
        h = (base - 18) * (value / top)
        x = 36 + i * slot
        parts.append(
            f'<rect x="{x:.1f}" y="{base - h:.1f}" width="{max(slot - 1, 1):.1f}" height="{h:.1f}">'
            f"<title>{_time(starts[i])}: {_fmt(value)}{escape(unit)}</title></rect>"
        )
    parts.append(f'<line x1="36" y1="{base}" x2="{width - 4}" y2="{base}" class="axis"/>')
    if starts:
        parts.append(f'<text x="36" y="{height - 4}" class="l">{_time(starts[0])}</text>')
        parts.append(f'<text x="{width - 4}" y="{height - 4}" class="l" text-anchor="end">{_time(starts[-1])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def waterfall(segments: Sequence[tuple[str, float, float, str]], *, width: int = 640) -> Markup:
    """One row per (label, start ms, duration ms, kind): the plugin steps and upstream attempts of a request."""
    end = max((start + dur for _, start, dur, _ in segments), default=0.0) or 1.0
    row, left = 22, 170
    height = row * len(segments) + 24
    scale = (width - left - 70) / end
    parts = [f'<svg class="waterfall" viewBox="0 0 {width} {height}" role="img" aria-label="plugin waterfall">']
    for i, (label, start, dur, kind) in enumerate(segments):
        y = 4 + i * row
        x = left + start * scale
        w = max(dur * scale, 1.5)
        parts.append(f'<text x="4" y="{y + 14}" class="l">{escape(label)}</text>')
        parts.append(
            f'<rect x="{x:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" class="{escape(kind)}">'
            f"<title>{escape(label)}: {dur:.2f} ms</title></rect>"
        )
        parts.append(f'<text x="{x + w + 4:.1f}" y="{y + 14}" class="l">{dur:.2f} ms</text>')
    parts.append(f'<text x="{left}" y="{height - 4}" class="l">0 ms</text>')
    parts.append(f'<text x="{width - 4}" y="{height - 4}" class="l" text-anchor="end">{end:.1f} ms</text></svg>')
    return Markup("".join(parts))


def _fmt(value: float) -> str:
    if value >= 100 or value == int(value):
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%m-%d %H:%M")
