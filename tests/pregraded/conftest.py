import io

import openpyxl
import pytest
import xlsxwriter
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.grading.factories import ImageFactory


@pytest.fixture
def pregraded_image(lab_unit):
    """An image row (no pixels: imports never read them) of the lab unit, pre-graded unless told otherwise."""

    def make(name, **kwargs):
        kwargs.setdefault("is_pregraded", True)
        kwargs.setdefault("source", "pregraded" if kwargs["is_pregraded"] else "direct")
        kwargs.setdefault("lab_unit", lab_unit)
        return ImageFactory(original_name=name, **kwargs)

    return make


def xlsx_openpyxl(rows, *, title_rows=(), sheet="Grades", extra_sheets=()) -> bytes:
    book = openpyxl.Workbook()
    first = book.active
    first.title = sheet
    for row in (*title_rows, *rows):
        first.append(list(row))
    for name, sheet_rows in extra_sheets:
        ws = book.create_sheet(name, 0)
        for row in sheet_rows:
            ws.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def xlsx_xlsxwriter(rows, *, title_rows=()) -> bytes:
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet("Sheet1")
    for index, row in enumerate((*title_rows, *rows)):
        for col, value in enumerate(row):
            if value is None:
                continue
            sheet.write(index, col, value)
    book.close()
    return out.getvalue()


def csv_bytes(rows, *, delimiter=",", encoding="utf-8") -> bytes:
    import csv

    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue().encode(encoding)


def upload(data: bytes, name: str = "grades.xlsx") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


@pytest.fixture
def import_fields(lab_unit):
    def make(grader_type="ai", **extra):
        fields = {
            "grader_type": grader_type,
            "hospital": str(lab_unit.hospital_id),
            "lab_unit": str(lab_unit.pk),
            "disease": "DR",
        }
        if grader_type == "ai":
            fields.update({"ai_model_name": "EyeArt", "ai_model_version": "2.1"})
        fields.update(extra)
        return fields

    return make
