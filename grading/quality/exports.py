"""Quality figures as CSV, XLSX and a one-page PDF report.

Exports hold aggregates only (counts, proportions, intervals, grader usernames and AI model names): no image,
patient or file identifiers. Text cells a spreadsheet would run as formulas are neutralised.
"""

from __future__ import annotations

import csv
import io
import re

from django.http import HttpResponse
from django.utils import timezone

from grading.quality import charts, present
from uploads.exports import neutralise

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
}
PDF = "application/pdf"


def _ci(est: dict | None) -> list:
    est = est or {}
    return [est.get("value"), est.get("low"), est.get("high")]


def _ci_cols(name: str) -> list[str]:
    return [name, f"{name}_low", f"{name}_high"]


# --- Tables ------------------------------------------------------------------------------------------------------------


def agreement_table(data: dict) -> tuple[list[str], list[list]]:
    columns = [
        "rater_a",
        "rater_b",
        "images",
        *_ci_cols("exact"),
        "images_on_scale",
        *_ci_cols("within_one"),
        *_ci_cols("kappa"),
        "kappa_se",
        "kappa_band",
        *_ci_cols("kappa_linear"),
        "kappa_linear_se",
        *_ci_cols("kappa_quadratic"),
        "kappa_quadratic_se",
        "referral_images",
        *_ci_cols("referral_exact"),
        *_ci_cols("referral_kappa"),
        "excluded_ungradable",
        "undefined",
    ]
    rows = []
    for p in data["pairs"]:
        ci = p["ci"]

        def trio(key, ci=ci, p=p):
            return [p[key], ci[key]["low"], ci[key]["high"]]

        rows.append(
            [
                p["a"],
                p["b"],
                p["n"],
                *trio("exact"),
                p["n_ordinal"],
                *trio("within_one"),
                *trio("kappa"),
                ci["kappa"].get("se"),
                p["bands"]["kappa"],
                *trio("kappa_linear"),
                ci["kappa_linear"].get("se"),
                *trio("kappa_quadratic"),
                ci["kappa_quadratic"].get("se"),
                p["referral"]["n"],
                *_ci(p["referral"]["exact"]),
                *_ci(p["referral"]["kappa"]),
                p["excluded_ungradable"],
                " ".join(f"{k}: {v}" for k, v in p["reasons"].items()),
            ]
        )
    return columns, rows


def performance_table(data: dict) -> tuple[list[str], list[list]]:
    columns = [
        "rater",
        "rater_kind",
        "unit",
        "ungradable",
        "cases",
        "tp",
        "fp",
        "tn",
        "fn",
        *_ci_cols("sensitivity"),
        *_ci_cols("specificity"),
        *_ci_cols("ppv"),
        *_ci_cols("npv"),
        *_ci_cols("auc"),
        "auc_cases",
        *_ci_cols("gradable_share"),
        "images_graded",
        "images_compared",
        "no_reference",
        "self_reference",
        "excluded_ungradable",
        "undefined",
    ]
    sel = data["selection"]
    rows = []
    for r in data["raters"]:
        reasons = [
            f"{key}: {r[key]['reason']}"
            for key in ("sensitivity", "specificity", "ppv", "npv", "auc")
            if r[key].get("reason")
        ]
        c = r["counts"]
        rows.append(
            [
                r["rater"]["token"],
                r["rater"]["kind"],
                sel["unit"],
                sel["ungradable"],
                r["n"],
                r["tp"],
                r["fp"],
                r["tn"],
                r["fn"],
                *_ci(r["sensitivity"]),
                *_ci(r["specificity"]),
                *_ci(r["ppv"]),
                *_ci(r["npv"]),
                *_ci(r["auc"]),
                r["auc"].get("n"),
                *_ci(r["gradable"]["rater"]),
                c["images_graded"],
                c["images_compared"],
                c["no_reference"],
                c["self_reference"],
                c["excluded_ungradable"],
                " ".join(reasons),
            ]
        )
    return columns, rows


def monitoring_table(data: dict) -> tuple[list[str], list[list]]:
    columns = [
        "grader",
        "status",
        "flags",
        "compared",
        "referable_cases",
        "non_referable_cases",
        *_ci_cols("sensitivity"),
        *_ci_cols("specificity"),
        "window_cases",
        *_ci_cols("window_sensitivity"),
        *_ci_cols("window_specificity"),
    ]
    rows = [
        [
            g["username"],
            g["status"],
            " ".join(g["flags"]),
            g["n"],
            g["positives"],
            g["negatives"],
            *_ci(g["sensitivity"]),
            *_ci(g["specificity"]),
            g["window"]["n"],
            *_ci(g["window"]["sensitivity"]),
            *_ci(g["window"]["specificity"]),
        ]
        for g in data["graders"]
    ]
    return columns, rows


TABLES = {"agreement": agreement_table, "performance": performance_table, "monitoring": monitoring_table}


def _filename(kind: str, data: dict, ext: str) -> str:
    sel = data["selection"]
    stem = "-".join(
        part
        for part in ("quality", kind, sel["disease"], sel["scheme"], timezone.localdate().strftime("%Y%m%d"))
        if part
    )
    return re.sub(r"[^A-Za-z0-9._-]+", "-", stem) + f".{ext}"


def response(kind: str, fmt: str, data: dict) -> HttpResponse:
    columns, rows = TABLES[kind](data)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if v is None else neutralise(v) for v in row])
        body = "\ufeff" + buffer.getvalue()  # BOM: spreadsheet programs then read UTF-8 correctly
    else:
        body = _xlsx(kind, data, columns, rows)
    out = HttpResponse(body, content_type=FORMATS[fmt])
    out["Content-Disposition"] = f'attachment; filename="{_filename(kind, data, fmt)}"'
    out["Cache-Control"] = "no-store"
    return out


# --- XLSX --------------------------------------------------------------------------------------------------------------


class _Book:
    def __init__(self):
        import xlsxwriter

        self.buffer = io.BytesIO()
        self.book = xlsxwriter.Workbook(
            self.buffer, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
        )
        self.bold = self.book.add_format({"bold": True})
        self.names: set[str] = set()

    def sheet(self, title: str, columns: list[str], rows: list[list]):
        name = re.sub(r"[\[\]:*?/\\]", " ", title)[:31]
        base, n = name, 2
        while name.lower() in self.names:
            suffix = f" ({n})"
            name = base[: 31 - len(suffix)] + suffix
            n += 1
        self.names.add(name.lower())
        ws = self.book.add_worksheet(name)
        for c, title_ in enumerate(columns):
            ws.write_string(0, c, str(title_), self.bold)
        ws.freeze_panes(1, 0)
        for r, row in enumerate(rows, start=1):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, bool):
                    ws.write_string(r, c, "yes" if value else "no")
                elif isinstance(value, int | float):
                    ws.write_number(r, c, value)
                else:
                    ws.write_string(r, c, str(neutralise(value)))
        ws.set_column(0, max(0, len(columns) - 1), 14)
        return ws

    def close(self) -> bytes:
        self.book.close()
        return self.buffer.getvalue()


def _selection_rows(data: dict) -> list[list]:
    rows = [["generated", timezone.localtime().strftime("%Y-%m-%d %H:%M %Z")]]
    rows += [[key, "" if value is None else str(value)] for key, value in data["selection"].items()]
    for key, value in (data.get("methods") or {}).items():
        rows.append([f"method: {key}", str(value)])
    return rows


def _matrix_rows(categories: list[dict], counts: list[list[int]]) -> tuple[list[str], list[list]]:
    codes = [c["code"] for c in categories]
    return ["rows \\ columns", *codes], [[codes[i], *row] for i, row in enumerate(counts)]


def _xlsx(kind: str, data: dict, columns: list[str], rows: list[list]) -> bytes:
    book = _Book()
    book.sheet(kind.capitalize(), columns, rows)
    book.sheet("Selection", ["parameter", "value"], _selection_rows(data))
    if kind == "agreement":
        fleiss = data["fleiss_kappa"]
        book.sheet(
            "Summary",
            ["figure", "value", "low", "high", "images", "raters", "band", "reason"],
            [
                ["images graded by two or more raters", data["n"]],
                [
                    "Fleiss' kappa",
                    fleiss["value"],
                    fleiss["low"],
                    fleiss["high"],
                    fleiss.get("n"),
                    fleiss.get("raters"),
                    fleiss.get("band"),
                    fleiss.get("reason"),
                ],
            ],
        )
        series = []
        for p in data["pairs"][:30]:
            head, body = _matrix_rows(data["categories"], p["confusion"])
            book.sheet(f"{p['a']} vs {p['b']}", [f"{p['a']} (rows) / {p['b']} (columns)", *head[1:]], body)
            series += [
                [p["a"], p["b"], s["month"], s["n"], s["kappa"], s["low"], s["high"], s["exact"]]
                for s in p["over_time"]
            ]
        book.sheet("Over time", ["rater_a", "rater_b", "month", "images", "kappa", "low", "high", "exact"], series)
    elif kind == "performance" and data.get("detail"):
        d = data["detail"]
        head, body = _matrix_rows(data["categories"], d["confusion"]["counts"])
        book.sheet(f"Confusion {d['rater']['token']}", [f"consensus (rows) / {d['rater']['token']}", *head[1:]], body)
        book.sheet("ROC", ["fpr", "tpr", "threshold"], d.get("roc") or [])
        explorer = d.get("thresholds") or []
        if explorer:
            keys = list(explorer[0].keys())
            book.sheet("Thresholds", keys, [[row[k] for k in keys] for row in explorer])
    elif kind == "monitoring":
        running = []
        for g in data["graders"]:
            s = g["series"]
            running += [
                [g["username"], i, sens, spec]
                for i, sens, spec in zip(s["index"], s["sensitivity"], s["specificity"], strict=True)
            ]
        book.sheet("Running", ["grader", "compared_grades", "sensitivity", "specificity"], running)
        book.sheet(
            "Thresholds",
            ["setting", "value"],
            [[k, v] for k, v in data["thresholds"].items()],
        )
    return book.close()


# --- PDF report ------------------------------------------------------------------------------------------------------

DPI = 150
PAGE = (1240, 1754)  # A4 at 150 dpi
MARGIN = 70


class _Page:
    def __init__(self):
        from PIL import Image, ImageDraw

        self.image = Image.new("RGB", PAGE, "white")
        self.draw = ImageDraw.Draw(self.image, "RGBA")
        self.y = MARGIN

    def text(self, x, y, s, size=16, bold=False, fill=charts.INK, anchor="la", width=None):
        f = charts.font(size, bold)
        s = str(s)
        if width is not None and f.getlength(s) > width:
            while s and f.getlength(s + "…") > width:
                s = s[:-1]
            s += "…"
        self.draw.text((x, y), s, font=f, fill=fill, anchor=anchor)

    def wrap(self, s, size=14, width=PAGE[0] - 2 * MARGIN, fill=charts.MUTED, gap=4):
        f = charts.font(size)
        words = str(s).split()
        line = ""
        for word in words:
            trial = f"{line} {word}".strip()
            if f.getlength(trial) > width and line:
                self.text(MARGIN, self.y, line, size, fill=fill)
                self.y += size + gap
                line = word
            else:
                line = trial
        if line:
            self.text(MARGIN, self.y, line, size, fill=fill)
            self.y += size + gap

    def heading(self, s):
        self.y += 14
        self.text(MARGIN, self.y, s, 22, bold=True)
        self.y += 34

    def table(self, columns: list[tuple[str, int, str]], rows: list[list[str]], size=14):
        x_positions = []
        x = MARGIN
        for _, width, _ in columns:
            x_positions.append(x)
            x += width
        row_h = size + 14
        self.draw.rectangle([MARGIN, self.y, x, self.y + row_h], fill=(233, 236, 239))
        for (title, width, align), x0 in zip(columns, x_positions, strict=True):
            self._cell(x0, width, align, title, size, bold=True, row_h=row_h)
        self.y += row_h
        for i, row in enumerate(rows):
            if i % 2:
                self.draw.rectangle([MARGIN, self.y, x, self.y + row_h], fill=(248, 249, 250))
            for (_, width, align), x0, value in zip(columns, x_positions, row, strict=True):
                self._cell(x0, width, align, value, size, bold=False, row_h=row_h)
            self.y += row_h
        self.draw.line([MARGIN, self.y, x, self.y], fill=(222, 226, 230), width=2)
        self.y += 8

    def _cell(self, x0, width, align, value, size, bold, row_h):
        y = self.y + row_h / 2
        if align == "r":
            self.text(x0 + width - 8, y, value, size, bold, anchor="rm", width=width - 12)
        else:
            self.text(x0 + 6, y, value, size, bold, anchor="lm", width=width - 12)


def _fit(chart: charts.Chart, width: int, height: int) -> float:
    return min(width / chart.width, height / chart.height, 2.0)


def pdf_response(agreement: dict, performance: dict) -> HttpResponse:
    page = _Page()
    sel = performance["selection"]
    page.text(MARGIN, page.y, "Quality report", 34, bold=True)
    page.text(
        PAGE[0] - MARGIN,
        page.y + 12,
        f"Generated {timezone.localtime():%Y-%m-%d %H:%M}",
        13,
        fill=charts.MUTED,
        anchor="ra",
    )
    page.y += 50
    page.text(MARGIN, page.y, f"{sel['disease']} · {sel['scheme_name']}", 18)
    page.y += 30
    where = [
        f"Hospital: {sel['hospital'] or 'all'}",
        f"Lab unit: {sel['lab_unit'] or 'all'}",
        f"Dataset: {sel['dataset'] or 'all'}",
        f"Grades given: {sel['date_from'] or 'any date'} to {sel['date_to'] or 'today'}",
    ]
    page.wrap(" · ".join(where), 14)
    page.wrap(
        f"Positive means: {sel['positive_means']}. Unit of analysis for performance: {sel['unit']}. "
        f"Ungradable: {sel['ungradable_handling']}.",
        14,
    )

    page.heading("Agreement between graders (per image)")
    pairs = sorted(agreement["pairs"], key=lambda p: -p["n"])[:6]
    if pairs:
        rows = []
        for p in pairs:
            show = present.pair_display(p)
            rows.append(
                [
                    f"{p['a_label']} – {p['b_label']}",
                    str(p["n"]),
                    show["exact"]["value"],
                    show["within_one"]["value"],
                    _with_ci(show["kappa"]),
                    show["kappa_linear"]["value"],
                    show["kappa_quadratic"]["value"],
                    show["kappa"]["band"] or "—",
                ]
            )
        page.table(
            [
                ("Raters", 250, "l"),
                ("Images", 80, "r"),
                ("Exact", 90, "r"),
                ("Within 1", 90, "r"),
                ("Kappa (95% CI)", 220, "r"),
                ("Linear", 80, "r"),
                ("Quadratic", 95, "r"),
                ("Band", 195, "l"),
            ],
            rows,
        )
        fleiss = agreement["fleiss_kappa"]
        text = (
            f"Fleiss' kappa over {fleiss['n']} images graded by all {fleiss['raters']} raters: "
            f"{_with_ci(present.est_num(fleiss))} ({fleiss.get('band')})."
            if fleiss["value"] is not None
            else f"Fleiss' kappa: {fleiss['reason']}"
        )
        page.wrap(text, 13)
    else:
        page.wrap(agreement.get("reason") or "No pair of raters graded the same images.", 14)

    page.heading(f"Against the consensus (per {sel['unit']})")
    raters = performance["raters"][:8]
    if raters:
        page.table(
            [
                ("Rater", 210, "l"),
                ("Cases", 70, "r"),
                ("Sensitivity (95% CI)", 230, "r"),
                ("Specificity (95% CI)", 230, "r"),
                ("PPV", 80, "r"),
                ("NPV", 80, "r"),
                ("AUC", 100, "r"),
            ],
            [
                [
                    r["rater"]["label"],
                    str(r["n"]),
                    _with_ci(present.est_pct(r["sensitivity"])),
                    _with_ci(present.est_pct(r["specificity"])),
                    present.pct(r["ppv"]["value"]),
                    present.pct(r["npv"]["value"]),
                    present.num(r["auc"]["value"], 3),
                ]
                for r in raters
            ],
        )
    else:
        page.wrap(performance.get("reason") or "No grades in this selection.", 14)

    top = page.y + 16
    column = (PAGE[0] - 2 * MARGIN - 40) // 2
    space = PAGE[1] - MARGIN - 170 - top
    drawn = 0
    if pairs:
        p = pairs[0]
        labels = [c["code"] for c in agreement["categories"]]
        keep = [i for i, c in enumerate(agreement["categories"]) if not c["ungradable"] or any(p["confusion"][i])]
        chart = charts.heatmap(
            [[p["confusion"][i][j] for j in keep] for i in keep],
            [labels[i] for i in keep],
            [labels[i] for i in keep],
            row_title=p["a_label"],
            col_title=p["b_label"],
            label="",
        )
        page.text(MARGIN, top, f"Confusion matrix: {p['a_label']} (rows) and {p['b_label']}", 15, bold=True)
        scale = _fit(chart, column, space - 30)
        chart.draw(page.image, MARGIN, top + 30, scale)
        drawn = max(drawn, chart.height * scale + 30)
    detail = performance.get("detail")
    if detail:
        x = MARGIN + column + 40
        chart = charts.roc(detail, label="")
        page.text(x, top, f"ROC and operating point: {detail['rater']['label']}", 15, bold=True)
        scale = _fit(chart, column, space - 30)
        chart.draw(page.image, x, top + 30, scale)
        drawn = max(drawn, chart.height * scale + 30)
    page.y = top + drawn + 16
    footer = PAGE[1] - MARGIN - 150
    if pairs and pairs[0]["over_time"] and footer - page.y > 200:
        p = pairs[0]
        page.text(MARGIN, page.y, f"Agreement over time: {p['a_label']} and {p['b_label']}", 15, bold=True)
        chart = charts.over_time(p["over_time"], label="")
        scale = _fit(chart, PAGE[0] - 2 * MARGIN, footer - page.y - 40)
        chart.draw(page.image, MARGIN, page.y + 30, scale)
        page.y += chart.height * scale + 40
    page.y = max(page.y, footer)
    notes = [
        "Methods: proportions with Wilson 95% intervals; Cohen's kappa and weighted kappa (linear and quadratic "
        "weights from the options' ordinal positions) with "
        + (agreement.get("methods") or {}).get("kappa", "asymptotic intervals")
        + "; Fleiss' kappa with a percentile bootstrap interval; AUC with the DeLong interval.",
        "Reference: the current consensus of each image. A grade that alone decided the consensus is not compared "
        "with it. Landis & Koch bands: ≤0 poor, 0.01–0.20 slight, 0.21–0.40 fair, 0.41–0.60 moderate, 0.61–0.80 "
        "substantial, 0.81–1.00 almost perfect.",
        (detail or {}).get("unit_note") or "",
    ]
    for note in notes:
        if note:
            page.wrap(note, 12)
    buffer = io.BytesIO()
    page.image.save(buffer, "PDF", resolution=DPI, title="Quality report", author="Fundus Grading Center")
    out = HttpResponse(buffer.getvalue(), content_type=PDF)
    out["Content-Disposition"] = f'attachment; filename="{_filename("report", performance, "pdf")}"'
    out["Cache-Control"] = "no-store"
    return out


def _with_ci(show: dict) -> str:
    return f"{show['value']} ({show['ci']})" if show.get("ci") else show["value"]
