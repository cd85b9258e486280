"""The template workbook offered for each grader type: a "Grades" sheet with the columns to fill, the values each
disease's active scheme accepts, and short instructions. Built in memory; nothing is stored."""

from __future__ import annotations

import io

import xlsxwriter

from grading.models import GradeScheme
from pregraded import spreadsheets

XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
ROWS_WITH_CHECKS = 100_000


def template_workbook(grader_type: str) -> bytes:
    required, optional = spreadsheets.expected_columns(grader_type)
    columns = required + optional
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    bold = book.add_format({"bold": True, "bg_color": "#E9ECEF", "border": 1})
    wrap = book.add_format({"text_wrap": True, "valign": "top"})

    grades = book.add_worksheet("Grades")
    for col, name in enumerate(columns):
        grades.write(0, col, name, bold)
        grades.set_column(col, col, 40 if name.endswith("_remarks") else 24)
    grades.freeze_panes(1, 0)
    if spreadsheets.PROBABILITY_COLUMN in columns:
        col = columns.index(spreadsheets.PROBABILITY_COLUMN)
        grades.data_validation(
            1,
            col,
            ROWS_WITH_CHECKS,
            col,
            {
                "validate": "decimal",
                "criteria": "between",
                "minimum": 0,
                "maximum": 1,
                "error_title": "AI probability",
                "error_message": "A number between 0 and 1 (for example 0.85).",
            },
        )

    values = book.add_worksheet("Allowed values")
    header = ["disease", "scheme", "code", "label", "also recognised", "referable", "ungradable"]
    for col, name in enumerate(header):
        values.write(0, col, name, bold)
    values.set_column(0, 1, 22)
    values.set_column(2, 2, 10)
    values.set_column(3, 4, 40)
    row = 1
    schemes = GradeScheme.objects.filter(is_active=True).select_related("disease").prefetch_related("options")
    for scheme in schemes.order_by("disease_id"):
        for option in scheme.options.all():
            if option.retired:
                continue
            values.write_row(
                row,
                0,
                [
                    scheme.disease.code if scheme.disease else "",
                    scheme.name,
                    option.code,
                    option.label,
                    ", ".join(option.synonyms or []),
                    "yes" if option.referable else "no",
                    "yes" if option.ungradable else "no",
                ],
            )
            row += 1

    notes = book.add_worksheet("Instructions")
    notes.set_column(0, 0, 110, wrap)
    lines = [
        f"{spreadsheets.GRADER_TYPE_LABELS[grader_type]} grades: one row per image on the Grades sheet.",
        f"Required columns: {', '.join(required)}. Optional: {', '.join(optional)}. Column names are matched "
        "ignoring case and spaces; the header may be below a title row.",
        "image_name: the file name of the pre-graded image as uploaded (case does not matter, the extension does).",
        f"{spreadsheets.grade_column(grader_type)}: a code, label or usual wording of the disease's scheme (see "
        "'Allowed values'). Other values are shown on a mapping screen before anything is imported.",
        "Blank cells and '-' mean no grade.",
    ]
    if grader_type == "ai":
        lines.append("ai_probability: a number between 0 and 1 (0.85, not 85%).")
    lines.append("Each image once per file. Save as .xlsx (or CSV); legacy .xls files are not accepted.")
    for index, line in enumerate(lines):
        notes.write(index, 0, line)
    book.close()
    return out.getvalue()
