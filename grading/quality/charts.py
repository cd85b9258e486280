"""Charts of quality figures, drawn once as a list of shapes and rendered two ways: inline SVG for the pages and
Pillow for the PDF report, so the report shows exactly what the page shows.

Coordinates are in CSS pixels of the chart; the Pillow renderer scales them. No JavaScript is needed to see a chart;
``static/app/quality.js`` only adds the threshold explorer's moving marker (the ROC chart carries its plot area in
``data-plot`` for that).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from grading.quality.present import num, pct

INK = "#212529"
MUTED = "#6c757d"
GRID = "#dee2e6"
BLUE = "#0d6efd"
RED = "#dc3545"
ORANGE = "#fd7e14"
GREEN = "#198754"
PURPLE = "#6f42c1"
SERIES = [BLUE, ORANGE, GREEN, PURPLE, RED, "#20c997", "#6610f2", "#d63384"]

FONT_FILES = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
]
BOLD_FONT_FILES = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Bold.ttf",
]


@dataclass
class Chart:
    width: int
    height: int
    kind: str
    label: str
    items: list[tuple] = field(default_factory=list)
    data: dict = field(default_factory=dict)

    # --- shapes -------------------------------------------------------------------------------------------------

    def rect(self, x, y, w, h, *, fill, stroke=None, opacity=1.0, title=None, css=None):
        self.items.append(("rect", x, y, w, h, fill, stroke, opacity, title, css))

    def line(self, x1, y1, x2, y2, *, stroke=INK, width=1.0, dash=False, css=None):
        self.items.append(("line", x1, y1, x2, y2, stroke, width, dash, css))

    def polyline(self, points, *, stroke=BLUE, width=2.0, dash=False, css=None):
        if len(points) >= 2:
            self.items.append(("polyline", list(points), stroke, width, dash, css))

    def polygon(self, points, *, fill=BLUE, opacity=0.15):
        if len(points) >= 3:
            self.items.append(("polygon", list(points), fill, opacity))

    def circle(self, cx, cy, r, *, fill=BLUE, stroke="#fff", title=None, css=None, hidden=False):
        self.items.append(("circle", cx, cy, r, fill, stroke, title, css, hidden))

    def text(self, x, y, s, *, size=11, anchor="start", bold=False, fill=INK, rotate=False):
        self.items.append(("text", x, y, str(s), size, anchor, bold, fill, rotate))

    # --- SVG ----------------------------------------------------------------------------------------------------

    def svg(self) -> SafeString:
        attrs = " ".join(f'data-{k}="{escape(v)}"' for k, v in self.data.items())
        out = [
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" '
            f'class="quality-chart" data-chart="{self.kind}" role="img" aria-label="{escape(self.label)}" '
            f'style="max-width:{self.width}px" {attrs}>',
            f"<title>{escape(self.label)}</title>",
        ]
        for item in self.items:
            out.append(_svg_item(item))
        out.append("</svg>")
        return mark_safe("".join(out))  # noqa: S308 - every text and attribute above is escaped

    # --- Pillow -------------------------------------------------------------------------------------------------

    def draw(self, image, x0: float, y0: float, scale: float) -> None:
        from PIL import ImageDraw

        draw = ImageDraw.Draw(image, "RGBA")

        def p(x, y):
            return (x0 + x * scale, y0 + y * scale)

        for item in self.items:
            kind = item[0]
            if kind == "rect":
                _, x, y, w, h, fill, stroke, opacity, _title, _css = item
                box = [p(x, y), p(x + w, y + h)]
                draw.rectangle(box, fill=_rgba(fill, opacity), outline=_rgba(stroke) if stroke else None)
            elif kind == "line":
                _, x1, y1, x2, y2, stroke, width, dash, _css = item
                _pil_line(draw, [p(x1, y1), p(x2, y2)], stroke, max(1, round(width * scale)), dash, scale)
            elif kind == "polyline":
                _, points, stroke, width, dash, _css = item
                _pil_line(draw, [p(x, y) for x, y in points], stroke, max(1, round(width * scale)), dash, scale)
            elif kind == "polygon":
                _, points, fill, opacity = item
                draw.polygon([p(x, y) for x, y in points], fill=_rgba(fill, opacity))
            elif kind == "circle":
                _, cx, cy, r, fill, stroke, _title, _css, hidden = item
                if hidden:
                    continue
                (px, py), rr = p(cx, cy), r * scale
                draw.ellipse([px - rr, py - rr, px + rr, py + rr], fill=_rgba(fill), outline=_rgba(stroke or fill))
            elif kind == "text":
                _, x, y, s, size, anchor, bold, fill, rotate = item
                _pil_text(image, draw, p(x, y), s, size * scale, anchor, bold, fill, rotate)


def _svg_item(item) -> str:
    kind = item[0]
    if kind == "rect":
        _, x, y, w, h, fill, stroke, opacity, title, css = item
        extra = f' stroke="{stroke}"' if stroke else ""
        extra += f' fill-opacity="{opacity:.3f}"' if opacity < 1 else ""
        extra += f' class="{css}"' if css else ""
        inner = f"<title>{escape(title)}</title>" if title else ""
        return f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{fill}"{extra}>{inner}</rect>'
    if kind == "line":
        _, x1, y1, x2, y2, stroke, width, dash, css = item
        extra = ' stroke-dasharray="4 3"' if dash else ""
        extra += f' class="{css}"' if css else ""
        return (
            f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{stroke}" '
            f'stroke-width="{width}"{extra}/>'
        )
    if kind == "polyline":
        _, points, stroke, width, dash, css = item
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        extra = ' stroke-dasharray="5 3"' if dash else ""
        extra += f' class="{css}"' if css else ""
        return (
            f'<polyline points="{pts}" fill="none" stroke="{stroke}" stroke-width="{width}" '
            f'stroke-linejoin="round"{extra}/>'
        )
    if kind == "polygon":
        _, points, fill, opacity = item
        pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        return f'<polygon points="{pts}" fill="{fill}" fill-opacity="{opacity:.3f}" stroke="none"/>'
    if kind == "circle":
        _, cx, cy, r, fill, stroke, title, css, hidden = item
        extra = f' class="{css}"' if css else ""
        extra += ' visibility="hidden"' if hidden else ""
        inner = f"<title>{escape(title)}</title>" if title else ""
        return (
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{r}" fill="{fill}" stroke="{stroke or fill}" '
            f'stroke-width="1.5"{extra}>{inner}</circle>'
        )
    _, x, y, s, size, anchor, bold, fill, rotate = item
    weight = ' font-weight="600"' if bold else ""
    transform = f' transform="rotate(-90 {x:.1f} {y:.1f})"' if rotate else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" dominant-baseline="middle" '
        f'fill="{fill}"{weight}{transform}>{escape(s)}</text>'
    )


# --- Pillow helpers ----------------------------------------------------------------------------------------------------


def _rgba(colour: str | None, opacity: float = 1.0):
    if not colour:
        return None
    c = colour.lstrip("#")
    if len(c) == 3:
        c = "".join(ch * 2 for ch in c)
    return (int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), round(255 * opacity))


@lru_cache(maxsize=64)
def font(size: float, bold: bool = False):
    from PIL import ImageFont

    for path in BOLD_FONT_FILES if bold else FONT_FILES:
        if Path(path).exists():
            return ImageFont.truetype(path, max(1, round(size)))
    return ImageFont.load_default(size=max(1, round(size)))


def _pil_line(draw, points, colour, width, dash, scale):
    if not dash:
        draw.line(points, fill=_rgba(colour), width=width, joint="curve")
        return
    on, off = 5 * scale, 3 * scale
    for (x1, y1), (x2, y2) in itertools.pairwise(points):
        length = math.hypot(x2 - x1, y2 - y1)
        if length == 0:
            continue
        pos = 0.0
        while pos < length:
            end = min(pos + on, length)
            a = (x1 + (x2 - x1) * pos / length, y1 + (y2 - y1) * pos / length)
            b = (x1 + (x2 - x1) * end / length, y1 + (y2 - y1) * end / length)
            draw.line([a, b], fill=_rgba(colour), width=width)
            pos += on + off


_ANCHORS = {"start": "lm", "middle": "mm", "end": "rm"}


def _pil_text(image, draw, xy, s, size, anchor, bold, fill, rotate):
    f = font(size, bold)
    if not rotate:
        draw.text(xy, s, font=f, fill=_rgba(fill), anchor=_ANCHORS[anchor])
        return
    from PIL import Image

    width = int(f.getlength(s)) + 4
    height = int(size * 1.4) + 4
    tile = Image.new("RGBA", (width, height), (255, 255, 255, 0))
    from PIL import ImageDraw

    ImageDraw.Draw(tile).text((width / 2, height / 2), s, font=f, fill=_rgba(fill), anchor="mm")
    tile = tile.rotate(90, expand=True)
    x, y = xy
    image.paste(tile, (int(x - tile.width / 2), int(y - tile.height / 2)), tile)


# --- Scales -------------------------------------------------------------------------------------------------------------


def _blend(share: float) -> str:
    """White → blue by share (0 … 1)."""
    share = max(0.0, min(1.0, share))
    start, end = (255, 255, 255), (13, 110, 253)
    rgb = [round(s + (e - s) * share) for s, e in zip(start, end, strict=True)]
    return "#{:02x}{:02x}{:02x}".format(*rgb)


# --- Charts -------------------------------------------------------------------------------------------------------------


def heatmap(counts, row_labels, col_labels, *, row_title: str, col_title: str, label: str) -> Chart:
    """A confusion matrix: cells shaded by their share of the row (so the diagonal reads as per-class agreement)."""
    k_rows, k_cols = len(row_labels), len(col_labels)
    cell = max(30, min(56, 340 // max(1, k_cols)))
    left, top = 86, 52
    width = left + cell * k_cols + 20
    height = top + cell * k_rows + 20
    chart = Chart(width, height, "heatmap", label)
    chart.text(left + cell * k_cols / 2, 14, col_title, anchor="middle", bold=True, size=12)
    chart.text(16, top + cell * k_rows / 2, row_title, anchor="middle", bold=True, size=12, rotate=True)
    total = sum(sum(row) for row in counts) or 1
    for j, name in enumerate(col_labels):
        chart.text(left + cell * (j + 0.5), top - 12, name, anchor="middle", size=11)
    for i, name in enumerate(row_labels):
        chart.text(left - 8, top + cell * (i + 0.5), name, anchor="end", size=11)
        row_total = sum(counts[i]) or 0
        for j in range(k_cols):
            value = counts[i][j]
            share = value / row_total if row_total else 0.0
            colour = _blend(share)
            title = (
                f"{row_title} {name}, {col_title} {col_labels[j]}: {value} "
                f"({pct(share)} of the row, {pct(value / total)} of all)"
            )
            x, y = left + cell * j, top + cell * i
            chart.rect(x, y, cell, cell, fill=colour, stroke="#ffffff", title=title)
            if i == j:
                chart.rect(x + 1, y + 1, cell - 2, cell - 2, fill="#000000", opacity=0.0, stroke=INK)
            chart.text(
                x + cell / 2,
                y + cell / 2,
                value,
                anchor="middle",
                size=11 if cell >= 36 else 9,
                fill="#ffffff" if share > 0.55 else INK,
                bold=i == j,
            )
    return chart


def _axes(chart: Chart, x0, y0, w, h, *, x_title, y_title, x_ticks, y_ticks, x_fmt=pct, y_fmt=pct):
    chart.rect(x0, y0, w, h, fill="#ffffff", stroke=GRID)
    for t in y_ticks:
        y = y0 + h - h * t
        chart.line(x0, y, x0 + w, y, stroke=GRID, width=1)
        chart.text(x0 - 6, y, y_fmt(t) if callable(y_fmt) else t, anchor="end", size=10, fill=MUTED)
    for t in x_ticks:
        x = x0 + w * t
        chart.line(x, y0, x, y0 + h, stroke=GRID, width=1)
        chart.text(x, y0 + h + 12, x_fmt(t) if callable(x_fmt) else t, anchor="middle", size=10, fill=MUTED)
    chart.text(x0 + w / 2, y0 + h + 32, x_title, anchor="middle", size=11)
    chart.text(x0 - 46, y0 + h / 2, y_title, anchor="middle", size=11, rotate=True)


def roc(result: dict, *, label: str) -> Chart:
    """ROC curve with the rater's operating point and, for DR, published operating points of AI systems."""
    width, height = 440, 420
    x0, y0, w, h = 64, 20, 340, 320
    chart = Chart(width, height, "roc", label)
    chart.data["plot"] = f"{x0},{y0},{w},{h}"
    ticks = [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    _axes(
        chart,
        x0,
        y0,
        w,
        h,
        x_title="1 − specificity (false-positive rate)",
        y_title="Sensitivity (true-positive rate)",
        x_ticks=ticks,
        y_ticks=ticks,
        x_fmt=lambda t: f"{t:.1f}",
        y_fmt=lambda t: f"{t:.1f}",
    )
    chart.line(x0, y0 + h, x0 + w, y0, stroke=MUTED, width=1, dash=True)

    def xy(fpr, tpr):
        return (x0 + w * fpr, y0 + h - h * tpr)

    for ref in result.get("published") or []:
        px, py = xy(1 - ref["specificity"], ref["sensitivity"])
        chart.rect(
            px - 4,
            py - 4,
            8,
            8,
            fill="#adb5bd",
            stroke="#495057",
            title=f"{ref['label']} (published): sensitivity {pct(ref['sensitivity'])}, "
            f"specificity {pct(ref['specificity'])}",
        )
    points = result.get("roc") or []
    if points:
        chart.polyline([xy(f, t) for f, t, _ in points], stroke=BLUE, width=2.2, css="roc-curve")
        auc = result.get("auc") or {}
        if auc.get("value") is not None:
            ci = f" ({num(auc['low'], 3)}–{num(auc['high'], 3)})" if auc.get("low") is not None else ""
            chart.text(x0 + w - 8, y0 + h - 16, f"AUC {auc['value']:.3f}{ci}", anchor="end", size=12, bold=True)
    op = result.get("operating_point")
    if op:
        px, py = xy(op["fpr"], op["tpr"])
        chart.circle(
            px,
            py,
            6,
            fill=RED,
            title=f"Operating point (the rater's own grades): sensitivity {pct(op['tpr'])}, "
            f"specificity {pct(1 - op['fpr'])}",
            css="roc-operating-point",
        )
    chart.circle(x0, y0 + h, 5, fill=ORANGE, css="roc-threshold-marker", hidden=True, title="Chosen threshold")
    # Legend
    ly = height - 12
    chart.circle(x0 + 6, ly, 5, fill=RED)
    chart.text(x0 + 16, ly, "operating point", size=10)
    if points:
        chart.line(x0 + 120, ly, x0 + 140, ly, stroke=BLUE, width=2.2)
        chart.text(x0 + 146, ly, "ROC curve", size=10)
    if result.get("published"):
        chart.rect(x0 + 222, ly - 4, 8, 8, fill="#adb5bd", stroke="#495057")
        chart.text(x0 + 236, ly, "published AI (DR)", size=10)
    return chart


def over_time(series: list[dict], *, label: str) -> Chart:
    """Kappa per month with its 95% interval (band), % exact agreement (dashed) and images per month (bars)."""
    width, height = 620, 280
    x0, y0, w, h = 56, 16, 540, 190
    chart = Chart(width, height, "over-time", label)
    lows = [s["low"] for s in series if s["low"] is not None]
    y_min = min([0.0, *lows])
    y_min = math.floor(y_min * 5) / 5
    span = 1 - y_min

    def y_of(v):
        return y0 + h - h * (v - y_min) / span

    ticks = [round(y_min + i * 0.2, 1) for i in range(round(span / 0.2) + 1)]
    chart.rect(x0, y0, w, h, fill="#ffffff", stroke=GRID)
    for t in ticks:
        chart.line(x0, y_of(t), x0 + w, y_of(t), stroke=GRID)
        chart.text(x0 - 6, y_of(t), f"{t:.1f}", anchor="end", size=10, fill=MUTED)
    n = len(series)
    if n == 0:
        chart.text(x0 + w / 2, y0 + h / 2, "No pair of grades in this selection", anchor="middle", fill=MUTED)
        return chart
    step = w / n

    def x_of(i):
        return x0 + step * (i + 0.5)

    biggest = max(s["n"] for s in series) or 1
    for i, s in enumerate(series):
        bar = 28 * s["n"] / biggest
        chart.rect(
            x_of(i) - min(step * 0.3, 10),
            y0 + h + 44 - bar,
            2 * min(step * 0.3, 10),
            bar,
            fill="#ced4da",
            title=f"{s['month']}: {s['n']} images",
        )
    every = max(1, math.ceil(n / 12))
    for i, s in enumerate(series):
        if i % every == 0 or i == n - 1:
            chart.text(x_of(i), y0 + h + 10, s["month"], anchor="middle", size=9, fill=MUTED)
    band_top = [(x_of(i), y_of(s["high"])) for i, s in enumerate(series) if s["high"] is not None]
    band_bottom = [(x_of(i), y_of(s["low"])) for i, s in enumerate(series) if s["low"] is not None]
    if len(band_top) >= 2:
        chart.polygon(band_top + band_bottom[::-1], fill=BLUE, opacity=0.15)
    kappa_points = [(x_of(i), y_of(s["kappa"])) for i, s in enumerate(series) if s["kappa"] is not None]
    exact_points = [(x_of(i), y_of(s["exact"])) for i, s in enumerate(series) if s.get("exact") is not None]
    chart.polyline(exact_points, stroke=ORANGE, width=1.6, dash=True)
    chart.polyline(kappa_points, stroke=BLUE, width=2.2)
    for i, s in enumerate(series):
        if s["kappa"] is not None:
            ci = f" (95% CI {num(s['low'])} to {num(s['high'])})" if s["low"] is not None else ""
            chart.circle(
                x_of(i),
                y_of(s["kappa"]),
                3.5,
                fill=BLUE,
                title=f"{s['month']}: kappa {num(s['kappa'])}{ci}, {pct(s.get('exact'))} exact, {s['n']} images",
            )
    ly = height - 12
    chart.line(x0, ly, x0 + 20, ly, stroke=BLUE, width=2.2)
    chart.text(x0 + 26, ly, "Cohen's kappa (band: 95% CI)", size=10)
    chart.line(x0 + 210, ly, x0 + 230, ly, stroke=ORANGE, width=1.6, dash=True)
    chart.text(x0 + 236, ly, "exact agreement", size=10)
    chart.rect(x0 + 350, ly - 5, 12, 10, fill="#ced4da")
    chart.text(x0 + 368, ly, "images per month", size=10)
    return chart


def forest(rows: list[dict], *, label: str, thresholds: tuple[float, float] | None = None) -> Chart:
    """Sensitivity and specificity of each rater with 95% intervals, side by side."""
    left, panel, gap, top, row_h = 150, 230, 30, 30, 26
    width = left + 2 * panel + gap + 20
    height = top + row_h * max(1, len(rows)) + 40
    chart = Chart(width, height, "forest", label)
    for p, (key, title) in enumerate((("sensitivity", "Sensitivity"), ("specificity", "Specificity"))):
        px = left + p * (panel + gap)
        chart.text(px + panel / 2, 12, title, anchor="middle", bold=True, size=12)
        chart.rect(px, top - 6, panel, row_h * max(1, len(rows)) + 6, fill="#ffffff", stroke=GRID)
        for t in (0, 0.25, 0.5, 0.75, 1.0):
            x = px + panel * t
            chart.line(x, top - 6, x, top + row_h * max(1, len(rows)), stroke=GRID)
            chart.text(x, top + row_h * max(1, len(rows)) + 12, pct(t, 0), anchor="middle", size=9, fill=MUTED)
        if thresholds:
            limit = thresholds[p]
            x = px + panel * limit
            chart.line(x, top - 6, x, top + row_h * max(1, len(rows)), stroke=RED, width=1, dash=True)
        for i, row in enumerate(rows):
            y = top + row_h * (i + 0.5)
            est = row[key]
            colour = SERIES[i % len(SERIES)]
            if est["value"] is None:
                chart.text(px + 6, y, "undefined", size=9, fill=MUTED)
                continue
            if est["low"] is not None:
                chart.line(px + panel * est["low"], y, px + panel * est["high"], y, stroke=colour, width=2)
            chart.circle(
                px + panel * est["value"],
                y,
                4.5,
                fill=colour,
                title=f"{row['rater']['label']}: {title.lower()} {pct(est['value'])} "
                f"(95% CI {pct(est['low'])} to {pct(est['high'])}; {est.get('x')}/{est.get('n')})",
            )
    for i, row in enumerate(rows):
        name = row["rater"]["label"]
        chart.text(left - 8, top + row_h * (i + 0.5), name if len(name) <= 22 else name[:21] + "…", anchor="end")
    return chart


def sparkline(series: dict, *, limits: tuple[float, float], label: str) -> Chart:
    """Running sensitivity (blue) and specificity (green) of a grader, with the flag thresholds (dashed)."""
    width, height = 200, 44
    chart = Chart(width, height, "sparkline", label)
    x0, y0, w, h = 2, 3, 196, 38
    chart.rect(x0, y0, w, h, fill="#ffffff", stroke=GRID)
    index = series.get("index") or []
    if not index:
        return chart
    last = max(index[-1], 2)
    values = [v for key in ("sensitivity", "specificity") for v in series[key] if v is not None]
    # The interesting range is near the minimums: start the scale at 0.5 unless a value is lower.
    bottom = min([0.5, *values, *limits])
    bottom = math.floor(bottom * 10) / 10

    def pt(i, v):
        return (x0 + w * (i - 1) / (last - 1), y0 + h - h * (v - bottom) / (1 - bottom))

    for limit, colour in zip(limits, (BLUE, GREEN), strict=True):
        y = pt(1, limit)[1]
        chart.line(x0, y, x0 + w, y, stroke=colour, width=0.8, dash=True)
    chart.text(x0 + w - 2, y0 + h - 6, f"{bottom:.1f}", anchor="end", size=8, fill=MUTED)
    for key, colour in (("sensitivity", BLUE), ("specificity", GREEN)):
        pts = [pt(i, v) for i, v in zip(index, series[key], strict=True) if v is not None]
        chart.polyline(pts, stroke=colour, width=1.5)
    return chart
