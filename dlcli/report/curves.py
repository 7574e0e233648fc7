"""Training curves for the run report: one inline SVG line chart per metric of history.csv,
training and validation together, so the page needs no plotting library and nothing to load."""

from __future__ import annotations

import html
import math
from collections.abc import Iterator

COLORS = ("#1f6fb4", "#e8710a", "#2a9d4b", "#c0392b", "#7b4fb0")


def history_charts(history: list[dict[str, str]]) -> list[str]:
    """SVG charts of the rows of history.csv: one per metric, then the learning rate."""
    return [_svg_chart(title, series) for title, series in _curves(history)]


def _curves(history: list[dict[str, str]]) -> Iterator[tuple[str, dict[str, list[tuple]]]]:
    """One chart per metric: its training and validation values by epoch; then the rate."""
    columns = list(history[0])
    names = [c.removeprefix("val_") for c in columns if c not in ("epoch", "phase", "seconds")]
    for name in dict.fromkeys(names):
        wanted = {"train": name, "validation": f"val_{name}"}
        series = {label: _column(history, c) for label, c in wanted.items() if c in columns}
        series = {label: points for label, points in series.items() if points}
        if series:
            yield ("learning rate" if name == "lr" else name), series


def _column(history: list[dict[str, str]], column: str) -> list[tuple[float, float]]:
    points = []
    for row in history:
        try:
            x, y = float(row["epoch"]), float(row[column])
        except (KeyError, TypeError, ValueError):
            continue
        if math.isfinite(y):
            points.append((x, y))
    return points


def _svg_chart(title: str, series: dict[str, list[tuple[float, float]]]) -> str:
    """A line chart by epoch as inline SVG: crisp at any zoom, nothing to load."""
    width, height, left, right, top, bottom = 350, 220, 58, 14, 30, 36
    xs = [x for points in series.values() for x, _ in points]
    ys = [y for points in series.values() for _, y in points]
    margin = (max(xs) - min(xs)) * 0.04 or 0.5  # no point on the axis; one epoch centred
    x0, x1 = min(xs) - margin, max(xs) + margin
    pad = (max(ys) - min(ys)) * 0.08 or abs(ys[0]) * 0.1 or 1.0
    y0, y1 = min(ys) - pad, max(ys) + pad

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * (width - left - right)

    def sy(y: float) -> float:
        return height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(title)} by epoch" '
        'font-family="sans-serif" font-size="11">',
        f'<text x="{left}" y="18" font-size="13" font-weight="600">{html.escape(title)}</text>',
    ]
    for i in range(5):
        y = y0 + (y1 - y0) * i / 4
        out.append(
            f'<line x1="{left}" x2="{width - right}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
            f'stroke="#e3e7ee"/><text x="{left - 6}" y="{sy(y) + 4:.1f}" '
            f'text-anchor="end" fill="#5b6475">{y:.3g}</text>'
        )
    step = max(1, math.ceil((max(xs) - min(xs)) / 6))
    for x in range(int(min(xs)), int(max(xs)) + 1, step):
        out.append(
            f'<text x="{sx(x):.1f}" y="{height - bottom + 16}" text-anchor="middle" '
            f'fill="#5b6475">{x}</text>'
        )
    out.append(f'<text x="{width - right}" y="{height - 4}" text-anchor="end">epoch</text>')
    right_edge = float(width - right)
    for n, (label, points) in reversed(list(enumerate(series.items()))):
        color = COLORS[n % len(COLORS)]
        line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
        out.append(f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="2"/>')
        out += [
            f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}"/>' for x, y in points
        ]
        if len(series) > 1:  # a legend on the title's line, right-aligned
            out.append(
                f'<text x="{right_edge}" y="18" text-anchor="end" fill="{color}">'
                f'{html.escape(label)}</text><line x1="{right_edge - 6.2 * len(label) - 20}" '
                f'x2="{right_edge - 6.2 * len(label) - 6}" y1="14" y2="14" stroke="{color}" '
                'stroke-width="2"/>'
            )
            right_edge -= 6.2 * len(label) + 32
    return "".join(out) + "</svg>"
