"""Charts drawn as SVG on the server: readable with JavaScript off, printable, no library.

Each function returns a `Chart`: the SVG markup plus the same numbers as table rows, which the
template puts behind a <details> disclosure (the text alternative). Colours are the Okabe-Ito
palette, which stays distinct for the common colour-blindnesses; series also differ by marker
shape and dash, so a grey print-out still tells them apart. Every axis is labelled with its unit.

Elements carry their numbers as data-* attributes (data-count, data-x, data-y ...): the browser
tests read them, and so can anyone scripting the page.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup, escape

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#000000")
DASHES = ("", "6 3", "2 3", "8 3 2 3")
MARKERS = ("circle", "square", "diamond", "triangle")
WIDTH, HEIGHT = 560, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 64, 16, 48  # room on the right for the last point's labels
Format = Callable[[float], str]


@dataclass(frozen=True)
class Chart:
    kind: str  # what it shows, as data-chart on its figure: "confusion", "roc", "traffic" ...
    title: str
    svg: Markup
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[float, float]]
    labels: Sequence[str] = ()  # one per point, drawn beside it (e.g. "v3")
    marks: Sequence[str] = ()  # one per point: a note that rings the point (e.g. an alias)


def number(value: float) -> str:
    """Short, readable numbers for ticks and cells: 0.9512, 1.2k, 3.4M."""
    if value != value:  # NaN
        return "-"
    magnitude = abs(value)
    if magnitude >= 1e6:
        return f"{value / 1e6:.3g}M"
    if magnitude >= 1e4:
        return f"{value / 1e3:.3g}k"
    if magnitude == int(magnitude):
        return str(int(value))
    return f"{value:.4g}"


def ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (steps of 1, 2 or 5 times a power of ten)."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    values = []
    value = first
    while value <= hi + step * 1e-9:
        values.append(round(value, 12))
        value += step
    if values[-1] < hi:
        values.append(round(value, 12))
    return values


class Frame:
    """The plot area of one chart: scales from data to pixels, axes with ticks and labels."""

    def __init__(self, x_range: tuple[float, float], y_range: tuple[float, float],
                 width: int = WIDTH, height: int = HEIGHT, *, nice: bool = True) -> None:
        self.x_ticks = ticks(*x_range) if nice else list(x_range)
        self.y_ticks = ticks(*y_range) if nice else list(y_range)
        self.x0, self.x1 = self.x_ticks[0], self.x_ticks[-1]
        self.y0, self.y1 = self.y_ticks[0], self.y_ticks[-1]
        self.width, self.height = width, height

    def x(self, value: float) -> float:
        span = self.x1 - self.x0 or 1
        return round(LEFT + (value - self.x0) / span * (self.width - LEFT - RIGHT), 2)

    def y(self, value: float) -> float:
        span = self.y1 - self.y0 or 1
        return round(self.height - BOTTOM - (value - self.y0) / span * (self.height - TOP - BOTTOM),
                     2)

    def axes(self, x_label: str, y_label: str, x_format: Format = number,
             y_format: Format = number) -> list[str]:
        bottom, right = self.height - BOTTOM, self.width - RIGHT
        parts = [f'<g class="axes" stroke="#595959" stroke-width="1">'
                 f'<line x1="{LEFT}" y1="{bottom}" x2="{right}" y2="{bottom}"/>'
                 f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}"/></g>']
        for value in self.y_ticks:
            y = self.y(value)
            parts.append(f'<line class="grid" x1="{LEFT}" y1="{y}" x2="{right}" y2="{y}" '
                         'stroke="#d9d9d9" stroke-width="1"/>')
            parts.append(_text(LEFT - 6, y + 4, y_format(value), anchor="end"))
        for value in self.x_ticks:
            parts.append(_text(self.x(value), bottom + 16, x_format(value), anchor="middle"))
        parts.append(_text((LEFT + right) / 2, self.height - 8, x_label, anchor="middle",
                           cls="axis-label"))
        parts.append(f'<text class="axis-label" x="14" y="{(TOP + bottom) / 2}" '
                     f'text-anchor="middle" transform="rotate(-90 14 {(TOP + bottom) / 2})">'
                     f"{escape(y_label)}</text>")
        return parts


def _text(x: float, y: float, content: str, *, anchor: str = "start", cls: str = "tick") -> str:
    return f'<text class="{cls}" x="{x}" y="{y}" text-anchor="{anchor}">{escape(content)}</text>'


def _svg(kind: str, title: str, parts: list[str], width: int = WIDTH,
         height: int = HEIGHT) -> Markup:
    return Markup(
        f'<svg class="chart-svg" data-chart="{escape(kind)}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>{''.join(parts)}</svg>"
    )


def _marker(shape: str, x: float, y: float, colour: str, attrs: str) -> str:
    if shape == "square":
        return (f'<rect class="point" x="{x - 4}" y="{y - 4}" width="8" height="8" '
                f'fill="{colour}" {attrs}/>')
    if shape == "diamond":
        return (f'<polygon class="point" points="{x},{y - 5} {x + 5},{y} {x},{y + 5} {x - 5},{y}" '
                f'fill="{colour}" {attrs}/>')
    if shape == "triangle":
        return (f'<polygon class="point" points="{x},{y - 5} {x + 5},{y + 4} {x - 5},{y + 4}" '
                f'fill="{colour}" {attrs}/>')
    return f'<circle class="point" cx="{x}" cy="{y}" r="4" fill="{colour}" {attrs}/>'


def _legend(names: Sequence[str], width: int) -> list[str]:
    parts = []
    x = LEFT + 8
    for i, name in enumerate(names):
        colour, dash = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)]
        parts.append(f'<line x1="{x}" y1="{TOP + 6}" x2="{x + 18}" y2="{TOP + 6}" '
                     f'stroke="{colour}" stroke-width="2" stroke-dasharray="{dash}"/>')
        parts.append(_marker(MARKERS[i % len(MARKERS)], x + 9, TOP + 6, colour, ""))
        parts.append(_text(x + 24, TOP + 10, name, cls="legend"))
        x += 40 + 7 * len(name)
        if x > width - 60:
            break
    return parts


def line_chart(kind: str, title: str, series: Sequence[Series], x_label: str, y_label: str, *,
               x_format: Format = number, y_format: Format = number,
               x_range: tuple[float, float] | None = None,
               y_range: tuple[float, float] | None = None, diagonal: bool = False,
               lines: bool = True) -> Chart:
    """Points joined by lines, one colour, dash and marker per series. `diagonal` draws y = x
    (chance on a ROC curve, a perfect fit on predicted against actual)."""
    xs = [x for s in series for x, _ in s.points] or [0.0, 1.0]
    ys = [y for s in series for _, y in s.points] or [0.0, 1.0]
    frame = Frame(x_range or (min(xs), max(xs)), y_range or (min(0.0, min(ys)), max(ys)))
    parts = frame.axes(x_label, y_label, x_format, y_format)
    if diagonal:
        lo, hi = max(frame.x0, frame.y0), min(frame.x1, frame.y1)
        parts.append(f'<line class="reference" x1="{frame.x(lo)}" y1="{frame.y(lo)}" '
                     f'x2="{frame.x(hi)}" y2="{frame.y(hi)}" stroke="#8c8c8c" '
                     'stroke-dasharray="4 4"/>')
    rows: list[tuple[Any, ...]] = []
    for i, s in enumerate(series):
        colour, dash, shape = PALETTE[i % len(PALETTE)], DASHES[i % len(DASHES)], \
            MARKERS[i % len(MARKERS)]
        coords = [(frame.x(x), frame.y(y)) for x, y in s.points]
        if lines and len(coords) > 1:
            path = " ".join(f"{x},{y}" for x, y in coords)
            parts.append(f'<polyline class="series" data-series="{escape(s.name)}" '
                         f'points="{path}" fill="none" stroke="{colour}" stroke-width="2" '
                         f'stroke-dasharray="{dash}"/>')
        dense = lines and len(coords) > 60  # a minute a point: dots, not markers
        for j, ((x, y), (px, py)) in enumerate(zip(s.points, coords, strict=True)):
            label = s.labels[j] if j < len(s.labels) else ""
            mark = s.marks[j] if j < len(s.marks) else ""
            rows.append((s.name, x_format(x), y_format(y), label, mark) if s.labels or s.marks
                        else (s.name, x_format(x), y_format(y)))
            attrs = (f'data-series="{escape(s.name)}" data-x="{x}" data-y="{y}"'
                     + (f' data-label="{escape(label)}"' if label else "")
                     + (f' data-mark="{escape(mark)}"' if mark else ""))
            if dense:
                parts.append(f'<circle class="point dot" cx="{px}" cy="{py}" r="1.5" '
                             f'fill="{colour}" {attrs}/>')
                continue
            parts.append(_marker(shape, px, py, colour, attrs))
            if label:
                parts.append(_text(px + 6, py - 8, label, cls="point-label"))
            if mark:
                parts.append(f'<circle class="mark" cx="{px}" cy="{py}" r="9" fill="none" '
                             f'stroke="{colour}" stroke-width="1.5"/>')
                parts.append(_text(px + 6, py + 18, mark, cls="mark-label"))
    if len(series) > 1:
        parts += _legend([s.name for s in series], frame.width)
    with_notes = any(s.labels or s.marks for s in series)
    columns = ("series", x_label, y_label) + (("label", "note") if with_notes else ())
    return Chart(kind, title, _svg(kind, title, parts), columns, rows)


def bar_chart(kind: str, title: str, bars: Sequence[tuple[str, float]], value_label: str, *,
              value_format: Format = number) -> Chart:
    """Horizontal bars, one per named value, largest magnitude first as given; negative values
    (signed coefficients) grow left of the zero line."""
    height = TOP + BOTTOM + 22 * max(1, len(bars))
    values = [v for _, v in bars] or [0.0]
    label_space = 150
    scale = Frame((min(0.0, min(values)), max(0.0, max(values))), (0, 1), height=height)
    span = (scale.x1 - scale.x0) or 1

    def x(value: float) -> float:
        return round(label_space + (value - scale.x0) / span * (WIDTH - label_space - RIGHT), 2)

    parts = [f'<line class="zero" x1="{x(0)}" y1="{TOP}" x2="{x(0)}" y2="{height - BOTTOM}" '
             'stroke="#595959"/>']
    for value in scale.x_ticks:
        parts.append(_text(x(value), height - BOTTOM + 16, value_format(value), anchor="middle"))
    parts.append(_text((label_space + WIDTH) / 2, height - 8, value_label, anchor="middle",
                       cls="axis-label"))
    for i, (name, value) in enumerate(bars):
        top = TOP + 22 * i + 3
        left, right = sorted((x(0), x(value)))
        colour = PALETTE[0] if value >= 0 else PALETTE[4]
        parts.append(f'<rect class="bar" data-name="{escape(name)}" data-value="{value}" '
                     f'x="{left}" y="{top}" width="{round(max(right - left, 1), 2)}" height="16" '
                     f'fill="{colour}"/>')
        parts.append(_text(label_space - 6, top + 12, name[:24], anchor="end", cls="bar-label"))
    return Chart(kind, title, _svg(kind, title, parts, height=height), ("name", value_label),
                 [(name, value_format(value)) for name, value in bars])


def histogram(kind: str, title: str, edges: Sequence[float], counts: Sequence[int],
              x_label: str, y_label: str = "rows") -> Chart:
    """Vertical bars between consecutive edges."""
    frame = Frame((edges[0], edges[-1]), (0, max(counts) if counts else 1))
    parts = frame.axes(x_label, y_label)
    rows: list[tuple[Any, ...]] = []
    for lo, hi, count in zip(edges, edges[1:], counts, strict=False):
        left, right = frame.x(lo), frame.x(hi)
        top = frame.y(count)
        parts.append(f'<rect class="bar" data-from="{lo}" data-to="{hi}" data-count="{count}" '
                     f'x="{left}" y="{top}" width="{round(max(right - left - 1, 1), 2)}" '
                     f'height="{round(frame.y(0) - top, 2)}" fill="{PALETTE[0]}"/>')
        rows.append((f"{number(lo)} to {number(hi)}", count))
    return Chart(kind, title, _svg(kind, title, parts), (x_label, y_label), rows)


def heatmap(kind: str, title: str, labels: Sequence[Any], counts: Sequence[Sequence[int]],
            shares: Sequence[Sequence[float]]) -> Chart:
    """A confusion matrix: rows are the true class, columns the predicted one; each cell shows
    its count and its share of the row, shaded by the share (one hue, light to dark, so it
    survives colour-blindness and greyscale)."""
    n = len(labels)
    cell = max(28, min(64, 360 // max(n, 1)))
    left, top = 120, 40
    width, height = left + cell * n + RIGHT, top + cell * n + 40
    parts = [_text(left + cell * n / 2, 16, "predicted class", anchor="middle", cls="axis-label"),
             f'<text class="axis-label" x="14" y="{top + cell * n / 2}" text-anchor="middle" '
             f'transform="rotate(-90 14 {top + cell * n / 2})">true class</text>']
    for i, label in enumerate(labels):
        parts.append(_text(left + cell * i + cell / 2, top - 6, str(label)[:10], anchor="middle"))
        parts.append(_text(left - 6, top + cell * i + cell / 2 + 4, str(label)[:14],
                           anchor="end"))
    rows: list[tuple[Any, ...]] = []
    for i, (row, share_row) in enumerate(zip(counts, shares, strict=True)):
        rows.append((str(labels[i]), *(f"{c} ({s:.0%})" for c, s in
                                       zip(row, share_row, strict=True))))
        for j, (count, share) in enumerate(zip(row, share_row, strict=True)):
            x, y = left + cell * j, top + cell * i
            shade = _blue(share)
            ink = "#ffffff" if share > 0.5 else "#1a1a1a"
            parts.append(f'<rect class="cell" data-true="{escape(str(labels[i]))}" '
                         f'data-predicted="{escape(str(labels[j]))}" data-count="{count}" '
                         f'data-share="{share}" x="{x}" y="{y}" width="{cell}" height="{cell}" '
                         f'fill="{shade}" stroke="#ffffff"/>')
            parts.append(f'<text class="cell-count" x="{x + cell / 2}" y="{y + cell / 2}" '
                         f'text-anchor="middle" fill="{ink}">{count}</text>')
            if cell >= 40:
                parts.append(f'<text class="cell-share" x="{x + cell / 2}" y="{y + cell / 2 + 14}"'
                             f' text-anchor="middle" fill="{ink}">{share:.0%}</text>')
    columns = ("true \\ predicted", *(str(label) for label in labels))
    return Chart(kind, title, _svg(kind, title, parts, width, height), columns, rows)


def _blue(share: float) -> str:
    """White to the palette's blue (#0072B2) by share."""
    share = min(max(share, 0.0), 1.0)
    r, g, b = (round(255 + (c - 255) * share) for c in (0x00, 0x72, 0xB2))
    return f"#{r:02x}{g:02x}{b:02x}"


def meters(kind: str, title: str, items: Sequence[tuple[str, float, float | None]],
           unit_format: Format, value_label: str) -> Chart:
    """One horizontal bar per item, filled to its value against its capacity (or against the
    largest value when it has none): disk used against free, memory per process."""
    height = TOP + BOTTOM + 30 * max(1, len(items))
    label_space = 170
    largest = max([cap or value for _, value, cap in items] or [1.0]) or 1.0
    span = WIDTH - label_space - RIGHT - 140  # room after the bar for "1.8 MiB of 75.3 GiB"
    parts = []
    rows: list[tuple[Any, ...]] = []
    for i, (name, value, capacity) in enumerate(items):
        top = TOP + 30 * i + 4
        whole = capacity or largest
        full = round(span * whole / largest, 2)
        filled = round(span * min(value, whole) / largest, 2)
        parts.append(f'<rect class="meter-track" x="{label_space}" y="{top}" width="{full}" '
                     'height="18" fill="#ececec" stroke="#8c8c8c"/>')
        parts.append(f'<rect class="meter" data-name="{escape(name)}" data-value="{value}" '
                     f'data-capacity="{capacity if capacity is not None else ""}" '
                     f'x="{label_space}" y="{top}" width="{max(filled, 1)}" height="18" '
                     f'fill="{PALETTE[4] if capacity and value > capacity else PALETTE[0]}"/>')
        parts.append(_text(label_space - 6, top + 13, name[:26], anchor="end", cls="bar-label"))
        shown = unit_format(value) + (f" of {unit_format(capacity)}" if capacity else "")
        parts.append(_text(label_space + full + 6, top + 13, shown, cls="bar-value"))
        rows.append((name, unit_format(value), unit_format(capacity) if capacity else "-"))
    parts.append(_text((label_space + WIDTH) / 2, height - 8, value_label, anchor="middle",
                       cls="axis-label"))
    return Chart(kind, title, _svg(kind, title, parts, height=height),
                 ("part", value_label, "capacity"), rows)
