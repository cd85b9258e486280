"""Reading grade spreadsheets: every kind of file users send, and every refusal says what was wrong."""

import io
import zipfile

import openpyxl
import pytest
import xlsxwriter

from pregraded import spreadsheets
from pregraded.spreadsheets import SheetError, read_grade_sheet
from tests.images import jpeg_bytes
from tests.pregraded.conftest import csv_bytes, xlsx_openpyxl, xlsx_xlsxwriter

WRITERS = {"openpyxl": xlsx_openpyxl, "xlsxwriter": xlsx_xlsxwriter}


def read(data: bytes, grader_type: str = "ai", max_rows: int = 1000):
    return read_grade_sheet(io.BytesIO(data), grader_type=grader_type, max_rows=max_rows)


def refused(data: bytes, grader_type: str = "ai", max_rows: int = 1000) -> str:
    with pytest.raises(SheetError) as info:
        read(data, grader_type, max_rows)
    return info.value.message


@pytest.mark.parametrize("writer", WRITERS)
def test_workbooks_of_each_writer_are_read_with_numbers_as_grade_values(writer):
    data = WRITERS[writer](
        [
            ("image_name", "ai_grade", "ai_remarks", "ai_probability"),
            ("a.jpg", 2, "ok", 0.91),
            ("b.jpg", 2.0, None, 0),
            ("c.jpg", "Moderate NPDR", None, "0.5"),
            ("d.jpg", None, None, None),
            ("e.jpg", "-", None, None),
        ]
    )
    sheet = read(data)
    assert sheet.format == "xlsx" and sheet.header_row == 1
    assert [(r.row, r.image_name, r.value) for r in sheet.rows] == [
        (2, "a.jpg", "2"),
        (3, "b.jpg", "2"),
        (4, "c.jpg", "Moderate NPDR"),
        (5, "d.jpg", ""),
        (6, "e.jpg", "-"),
    ]
    assert sheet.rows[0].remarks == "ok" and sheet.rows[0].probability == 0.91
    assert sheet.rows[2].probability == "0.5"  # text is kept as given and checked at import


@pytest.mark.parametrize("writer", WRITERS)
def test_header_may_be_on_a_later_row_and_names_ignore_case_and_spaces(writer):
    data = WRITERS[writer](
        [(" Image Name ", "RESIDENT_GRADE", "Resident Remarks"), ("x.jpg", "1", "fine")],
        title_rows=[("Grades exported 2024-05-01",), (), ("Site:", "City Eye")],
    )
    sheet = read(data, "resident")
    assert sheet.header_row == 4
    assert [(r.row, r.image_name, r.value, r.remarks) for r in sheet.rows] == [(5, "x.jpg", "1", "fine")]


def test_the_grades_sheet_may_follow_a_cover_sheet():
    data = xlsx_openpyxl(
        [("image_name", "resident2_grade"), ("a.jpg", "R0")],
        extra_sheets=[("Cover", [("Study", "DR screening"), ("Date", "2024")])],
    )
    sheet = read(data, "resident2")
    assert sheet.sheet == "Grades" and sheet.rows[0].value == "R0"


def test_missing_required_column_is_named_with_the_columns_found():
    message = refused(xlsx_openpyxl([("image_name", "grade", "notes"), ("a.jpg", "1", "")]), "ai")
    assert "Required column 'ai_grade' not found" in message
    assert "Columns found: 'image_name', 'grade', 'notes'" in message
    assert "image_name and ai_grade" in message


def test_missing_column_hints_at_the_grader_type_the_file_is_for():
    message = refused(xlsx_openpyxl([("image_name", "resident_grade"), ("a.jpg", "1")]), "resident2")
    assert "'resident2_grade' not found" in message
    assert "did you mean grader type Resident?" in message


def test_no_image_name_header_in_the_first_rows():
    message = refused(csv_bytes([("file", "ai_grade"), ("a.jpg", "1")]))
    assert "No header row with an image_name column" in message and "'file', 'ai_grade'" in message


def test_duplicate_column_is_refused():
    message = refused(xlsx_openpyxl([("image_name", "ai_grade", "AI Grade"), ("a.jpg", "1", "2")]))
    assert "'ai_grade' appears more than once" in message and "columns B, C" in message


@pytest.mark.parametrize("writer", WRITERS)
def test_empty_sheet(writer):
    assert "The spreadsheet is empty" in refused(WRITERS[writer]([]))


def test_header_without_rows():
    assert "has a header row (row 1) but no data rows" in refused(xlsx_openpyxl([("image_name", "ai_grade")]))
    blank_rows = xlsx_openpyxl([("image_name", "ai_grade"), (None, None), ("", "")])
    assert "no data rows" in refused(blank_rows)


def test_formulas_without_saved_results_are_refused_with_the_cells():
    data = xlsx_openpyxl(
        [
            ("image_name", "ai_grade", "ai_probability"),
            ("a.jpg", '=IF(C2>0.5,"RDR","NRDR")', 0.7),
            ("b.jpg", "RDR", "=C2/2"),
        ]
    )
    message = refused(data)
    assert "2 formula cell(s) without a saved result" in message
    assert "B2 (ai_grade: =IF(C2>0.5" in message and "C3 (ai_probability: =C2/2)" in message
    assert "save it again" in message


def test_formulas_with_saved_results_read_as_their_results():
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["image_name", "ai_grade"])
    sheet.write(1, 0, "a.jpg")
    sheet.write_formula(1, 1, '=IF(1>0,"RDR","NRDR")', None, "RDR")
    book.close()
    assert read(out.getvalue()).rows[0].value == "RDR"


def test_formulas_outside_the_columns_read_do_not_matter():
    data = xlsx_openpyxl([("image_name", "ai_grade", "patient_count"), ("a.jpg", "RDR", "=1+1")])
    assert read(data).rows[0].value == "RDR"


def test_blank_and_dash_cells_are_kept_as_no_grade_not_errors():
    sheet = read(csv_bytes([("image_name", "ai_grade"), ("a.jpg", ""), ("b.jpg", "-"), ("c.jpg", " ")]))
    assert [r.value for r in sheet.rows] == ["", "-", ""]


def test_too_many_rows_is_refused_before_anything_else():
    rows = [("image_name", "ai_grade")] + [(f"{i}.jpg", "1") for i in range(11)]
    message = refused(csv_bytes(rows), max_rows=10)
    assert "more than 10 data rows" in message and "Split it" in message


def test_csv_dialects_and_encodings():
    semicolon = csv_bytes([("image_name", "ai_grade"), ("é.jpg", "2")], delimiter=";")
    assert read(semicolon).rows[0].image_name == "é.jpg"
    bom = b"\xef\xbb\xbf" + csv_bytes([("Image_Name", "ai_grade"), ("a.jpg", "2")])
    assert read(bom).rows[0].value == "2"
    windows = csv_bytes([("image_name", "ai_grade", "ai_remarks"), ("a.jpg", "2", "réponse")], encoding="cp1252")
    assert read(windows).rows[0].remarks == "réponse"
    tabbed = csv_bytes([("image_name", "ai_grade"), ("a.jpg", "2")], delimiter="\t")
    assert read(tabbed).rows[0].value == "2"


def test_legacy_xls_is_refused():
    ole2 = bytes.fromhex("d0cf11e0a1b11ae1") + b"\x00" * 512
    message = refused(ole2)
    assert "legacy Excel file (.xls)" in message and "save it as an Excel workbook (.xlsx)" in message


@pytest.mark.parametrize(
    "data, expected",
    [
        (jpeg_bytes(seed=1), "detected: image/jpeg"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\x00\x00", "not a spreadsheet"),
        (b"", "The file is empty (0 bytes)"),
    ],
)
def test_non_spreadsheets_are_refused_with_what_they_are(data, expected):
    message = refused(data)
    assert expected in message
    if data:
        assert "Upload an Excel workbook (.xlsx) or a CSV file" in message


def test_html_saved_as_xls_is_refused():
    assert "web page (HTML)" in refused(b"<html><body><table><tr><td>image_name</td></tr></table></body></html>")


def test_a_zip_that_is_not_a_workbook_and_opendocument():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("a.txt", "hello")
    assert "it is a ZIP archive" in refused(out.getvalue())
    ods = io.BytesIO()
    with zipfile.ZipFile(ods, "w") as archive:
        archive.writestr("mimetype", "application/vnd.oasis.opendocument.spreadsheet")
        archive.writestr("content.xml", "<x/>")
    assert "OpenDocument" in refused(ods.getvalue())


def test_a_workbook_that_expands_too_much_is_refused(monkeypatch):
    monkeypatch.setattr(spreadsheets, "MAX_UNCOMPRESSED_BYTES", 2000)
    data = xlsx_openpyxl([("image_name", "ai_grade")] + [(f"{i}.jpg", "1") for i in range(200)])
    assert "expands to more than" in refused(data)


def test_a_damaged_workbook_is_refused():
    data = xlsx_openpyxl([("image_name", "ai_grade"), ("a.jpg", "1")])
    damaged = data[: len(data) // 2]
    message = refused(damaged)
    assert "could not be read" in message or "not a spreadsheet" in message


def test_dates_and_long_text_are_made_safe():
    book = openpyxl.Workbook()
    ws = book.active
    ws.append(["image_name", "ai_grade", "ai_remarks"])
    ws.append(["a" * 400 + ".jpg", "x" * 500, "r" * 5000])
    out = io.BytesIO()
    book.save(out)
    row = read(out.getvalue()).rows[0]
    assert len(row.image_name) <= spreadsheets.MAX_IMAGE_NAME
    assert len(row.value) <= spreadsheets.MAX_RAW_VALUE and len(row.remarks) <= spreadsheets.MAX_REMARKS
