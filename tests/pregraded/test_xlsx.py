"""The streamed .xlsx reader: the same values as openpyxl's read-only mode for workbooks of several writers, and the
forms of the format that writers differ in (prefixed or Strict namespaces, inline strings, missing references)."""

import datetime as dt
import io
import zipfile

import openpyxl
import pytest
import xlsxwriter

from pregraded import xlsx


def openpyxl_rows(data: bytes) -> dict[str, list]:
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    out = {}
    for sheet in book.worksheets:
        sheet.reset_dimensions()
        rows = []
        for number, row in enumerate(sheet.iter_rows(values_only=True), start=1):
            values = list(row)
            while values and values[-1] is None:
                values.pop()
            if values:
                rows.append((number, tuple(values)))
        out[sheet.title] = rows
    book.close()
    return out


def lean_rows(data: bytes) -> dict[str, list]:
    with xlsx.Workbook(io.BytesIO(data)) as book:
        return {sheet.name: [(row.number, row.values) for row in book.rows(sheet)] for sheet in book.sheets}


def test_values_of_an_xlsxwriter_workbook_match_openpyxl():
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    dates = book.add_format({"num_format": "yyyy-mm-dd"})
    times = book.add_format({"num_format": "hh:mm"})
    elapsed = book.add_format({"num_format": "[h]:mm:ss"})
    bold = book.add_format({"bold": True})
    sheet = book.add_worksheet("Grades")
    sheet.write_row(0, 0, ["image_name", "ai_grade", "ai_probability", "when", "flag"])
    sheet.write_row(1, 0, ["a.jpg", 2, 0.25])
    sheet.write_datetime(1, 3, dt.datetime(2024, 5, 1), dates)
    sheet.write_boolean(1, 4, True)
    sheet.write_rich_string(2, 0, bold, "b", ".jpg")
    sheet.write_formula(2, 1, '=IF(1>0,"RDR","NRDR")', None, "RDR")
    sheet.write_formula(2, 2, "=1/0", None, "#DIV/0!")
    sheet.write_datetime(2, 3, dt.datetime(1900, 1, 1, 14, 30), times)
    sheet.write_number(2, 4, 1.5, elapsed)
    sheet.write_row(5, 0, ["gap.jpg", "Moderate NPDR", 1e-05, "  spaced  ", "ünïcödé & <xml>"])
    sheet.write(7, 9, "far column")
    other = book.add_worksheet("Notes")
    other.write(0, 0, "Study")
    book.close()
    data = out.getvalue()
    assert lean_rows(data) == openpyxl_rows(data)


def test_values_of_an_openpyxl_workbook_match_openpyxl():
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.title = "Grades"
    sheet.append(["image_name", "resident_grade", "n", "date"])
    sheet.append(["a.jpg", "R1", 3, dt.date(2023, 1, 2)])
    sheet.append(["b.jpg", 2.0, -4.5e10, dt.datetime(2023, 1, 2, 3, 4, 5)])
    sheet.append([None, None, None, None])
    sheet.append(["c.jpg", False, "=1+1", None])
    book.create_sheet("Empty")
    out = io.BytesIO()
    book.save(out)
    data = out.getvalue()
    assert lean_rows(data) == openpyxl_rows(data)


def test_formulas_without_saved_results_are_reported_with_their_text():
    out = io.BytesIO()
    book = xlsxwriter.Workbook(out, {"in_memory": True})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["image_name", "ai_grade"])
    sheet.write(1, 0, "a.jpg")
    sheet.write_formula(1, 1, '=IF(C2>0.5,"RDR","NRDR")', None, "")
    book.close()
    with xlsx.Workbook(io.BytesIO(out.getvalue())) as workbook:
        rows = list(workbook.rows(workbook.sheets[0]))
    assert rows[1].values == ("a.jpg",)
    assert rows[1].formulas == {1: '=IF(C2>0.5,"RDR","NRDR")'}


MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
STRICT = "http://purl.oclc.org/ooxml/spreadsheetml/main"
RELS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
STRICT_RELS = "http://purl.oclc.org/ooxml/officeDocument/relationships"


def package(sheet_xml: str, *, main=MAIN, rels=RELS, strings_xml: str | None = None, workbook_pr: str = "") -> bytes:
    """A minimal workbook around one hand-written worksheet (forms that openpyxl and xlsxwriter never write)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(
            "_rels/.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rels}/officeDocument" Target="/xl/workbook.xml"/></Relationships>',
        )
        archive.writestr(
            "xl/workbook.xml",
            f'<workbook xmlns="{main}" xmlns:r="{rels}">{workbook_pr}'
            '<sheets><sheet name="Data" sheetId="1" r:id="rId1"/></sheets></workbook>',
        )
        strings = (
            f'<Relationship Id="rId2" Type="{rels}/sharedStrings" Target="sharedStrings.xml"/>' if strings_xml else ""
        )
        archive.writestr(
            "xl/_rels/workbook.xml.rels",
            '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
            f'<Relationship Id="rId1" Type="{rels}/worksheet" Target="worksheets/sheet1.xml"/>{strings}'
            "</Relationships>",
        )
        archive.writestr("xl/worksheets/sheet1.xml", sheet_xml)
        if strings_xml:
            archive.writestr("xl/sharedStrings.xml", strings_xml)
    return out.getvalue()


def test_prefixed_elements_inline_strings_and_cells_without_references():
    sheet = (
        f'<x:worksheet xmlns:x="{MAIN}"><x:sheetData>'
        '<x:row><x:c t="inlineStr"><x:is><x:t>image_name</x:t></x:is></x:c>'
        '<x:c t="inlineStr"><x:is><x:r><x:t>ai_</x:t></x:r><x:r><x:t>grade</x:t></x:r></x:is></x:c></x:row>'
        '<x:row><x:c t="inlineStr"><x:is><x:t>a.jpg</x:t></x:is></x:c><x:c><x:v>2</x:v></x:c>'
        '<x:c t="b"><x:v>1</x:v></x:c><x:c t="e"><x:v>#N/A</x:v></x:c></x:row>'
        '<x:row r="7"><x:c r="C7" t="str"><x:f>A1&amp;"x"</x:f><x:v>image_namex</x:v></x:c></x:row>'
        "</x:sheetData></x:worksheet>"
    )
    rows = lean_rows(package(sheet))["Data"]
    assert rows == [
        (1, ("image_name", "ai_grade")),
        (2, ("a.jpg", 2, True, "#N/A")),
        (7, (None, None, "image_namex")),
    ]


def test_strict_namespaces_shared_strings_with_phonetic_runs_and_the_1904_calendar():
    strings = (
        f'<sst xmlns="{STRICT}"><si><t>image_name</t></si><si><r><t>漢</t></r><rPh sb="0" eb="1"><t>かん</t></rPh></si>'
        '<si><t xml:space="preserve"> spaced </t></si></sst>'
    )
    sheet = (
        f'<worksheet xmlns="{STRICT}"><sheetData><row r="1"><c r="A1" t="s"><v>0</v></c></row>'
        '<row r="2"><c r="A2" t="s"><v>1</v></c><c r="B2" t="s"><v>2</v></c><c r="AA2"><v>1.5E3</v></c></row>'
        "</sheetData></worksheet>"
    )
    data = package(sheet, main=STRICT, rels=STRICT_RELS, strings_xml=strings, workbook_pr='<workbookPr date1904="1"/>')
    with xlsx.Workbook(io.BytesIO(data)) as book:
        assert book._epoch == openpyxl.utils.datetime.CALENDAR_MAC_1904
        rows = [(row.number, row.values) for row in book.rows(book.sheets[0])]
    assert rows[0] == (1, ("image_name",))
    assert rows[1][1][:2] == ("漢", " spaced ") and rows[1][1][26] == 1500.0


@pytest.mark.parametrize(
    "sheet",
    [
        '<!DOCTYPE x [<!ENTITY a "aaaa">]><worksheet><sheetData><row><c t="inlineStr"><is><t>&a;</t></is></c></row>'
        "</sheetData></worksheet>",
        "<worksheet><sheetData><row><c><v>1</v></row></sheetData></worksheet>",
        '<worksheet><sheetData><row><c r="1A"><v>1</v></c></row></sheetData></worksheet>',
        '<worksheet><sheetData><row><c t="s"><v>7</v></c></row></sheetData></worksheet>',
    ],
    ids=["doctype", "malformed", "bad-reference", "missing-shared-string"],
)
def test_damaged_or_unsafe_sheets_are_refused(sheet):
    with xlsx.Workbook(io.BytesIO(package(sheet))) as book, pytest.raises(xlsx.WorkbookError) as info:
        list(book.rows(book.sheets[0]))
    assert "Data" in str(info.value) or "document type" in str(info.value)


def test_a_missing_worksheet_part_is_refused():
    data = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package("<worksheet/>"))) as source, zipfile.ZipFile(data, "w") as target:
        for info in source.infolist():
            if not info.filename.startswith("xl/worksheets/"):
                target.writestr(info, source.read(info))
    with xlsx.Workbook(data) as book, pytest.raises(xlsx.WorkbookError, match="missing"):
        list(book.rows(book.sheets[0]))


def _sheet_parts(data: bytes):
    """(sheet XML, the reader's context) of the first worksheet, to run both reading paths on the same bytes."""
    book = xlsx.Workbook(io.BytesIO(data))
    sheet = book.sheets[0]
    with book._member(sheet.part) as member:
        xml = member.read()
    return xml, (book._shared_strings(), *book._date_styles(), book._epoch)


def _plain_workbook(writer: str) -> bytes:
    rows = [
        ("image_name", "ai_grade", "ai_probability", "when", "flag"),
        ("a.jpg", 2, 0.25, dt.datetime(2024, 5, 1, 8, 30), True),
        ("b & c <d>.jpg", "Moderate NPDR", 1e-05, None, False),
        (None, None, None, None, None),
        ("e.jpg", "-", -3, dt.date(1999, 12, 31), None),
    ]
    out = io.BytesIO()
    if writer == "openpyxl":
        book = openpyxl.Workbook()
        for row in rows:
            book.active.append(list(row))
        book.active.cell(row=9, column=12, value="far")
        book.save(out)
    else:
        book = xlsxwriter.Workbook(out, {"in_memory": True})
        sheet = book.add_worksheet()
        dates = book.add_format({"num_format": "yyyy-mm-dd hh:mm"})
        for index, row in enumerate(rows):
            for col, value in enumerate(row):
                if isinstance(value, dt.date):
                    sheet.write_datetime(index, col, value, dates)
                elif value is not None:
                    sheet.write(index, col, value)
        sheet.write(8, 11, "far")
        book.close()
    return out.getvalue()


@pytest.mark.parametrize("writer", ["openpyxl", "xlsxwriter"])
def test_the_plain_path_reads_what_the_general_path_reads(writer):
    data = _plain_workbook(writer)
    xml, context = _sheet_parts(data)
    plain = xlsx._plain_rows(xml, *context)
    assert plain is not None  # these writers' cells are all of the plain form (openpyxl: inline strings)
    assert plain == list(xlsx._sheet_rows(io.BytesIO(xml), *context))
    assert lean_rows(data) == openpyxl_rows(data)


def test_large_sheets_are_streamed_with_the_same_result(monkeypatch):
    data = _plain_workbook("xlsxwriter")
    expected = lean_rows(data)
    monkeypatch.setattr(xlsx, "PLAIN_MAX_BYTES", 0)
    assert lean_rows(data) == expected


@pytest.mark.parametrize(
    "cells",
    [
        '<c r="A1"><f>1+1</f><v>2</v></c>',  # a formula
        '<c r="A1" t="inlineStr"><is><r><t>x</t></r></is></c>',  # rich text
        '<c r="A1" t="inlineStr"><is><t>x</t><rPh><t>y</t></rPh></is></c>',  # a phonetic guide
        '<c r="A1" t="s" s="1"><v>0</v></c>',  # attributes in another order
        '<c r="A1" cm="1"><v>1</v></c>',  # another attribute
        '<!-- note --><c r="A1"><v>1</v></c>',  # a comment
        '<c r="A1"><v>1</v></c><x:extra xmlns:x="urn:x">2</x:extra>',  # other markup between cells
    ],
)
def test_other_forms_of_cells_take_the_general_path(cells):
    xml = f'<worksheet xmlns="{MAIN}"><sheetData><row r="1">{cells}</row></sheetData></worksheet>'.encode()
    assert xlsx._plain_rows(xml, ["x"], frozenset(), frozenset(), None) is None
    assert list(xlsx._sheet_rows(io.BytesIO(xml), ["x"], frozenset(), frozenset(), None))


def test_rows_out_of_order_take_the_general_path():
    xml = (
        f'<worksheet xmlns="{MAIN}"><sheetData><row r="3"><c r="A3"><v>3</v></c></row>'
        '<row r="2"><c r="A2"><v>2</v></c></row></sheetData></worksheet>'
    ).encode()
    assert xlsx._plain_rows(xml, [], frozenset(), frozenset(), None) is None
    assert [row.number for row in xlsx._sheet_rows(io.BytesIO(xml), [], frozenset(), frozenset(), None)] == [3, 2]
