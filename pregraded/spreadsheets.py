"""Reading grade spreadsheets (.xlsx or .csv): type by content, header detection, column matching, cell conversion.

No database here: ``read_grade_sheet`` turns an uploaded file into ``ParsedSheet`` (the rows that matter, in file
order, with their spreadsheet row numbers) or raises ``SheetError`` with a message the user can act on.

Rules:
- The type is decided by content, never by the file name: an OOXML workbook (ZIP with ``xl/workbook.xml``) or text
  that reads as CSV. Legacy ``.xls`` (OLE2), OpenDocument, HTML saved as ``.xls`` and everything else are refused.
- Columns are matched ignoring case, spaces, underscores and hyphens (``Image Name`` = ``image_name``). The header may
  be on any of the first ``HEADER_SEARCH_ROWS`` rows (titles above it are common).
- Workbooks are read by ``pregraded.xlsx`` for the values the writing program saved. A formula whose result was
  never saved (files written by programs that do not calculate) would read as blank: such files are refused with the
  cells named, instead of importing blanks.
- Numbers are grade values like any text: ``2`` and ``2.0`` are both "2".
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import math
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from pregraded import xlsx

HEADER_SEARCH_ROWS = 20
SNIFF_BYTES = 8192
# A workbook whose parts expand to more than this is refused before it is read (a ZIP bomb, or a file with far more
# in it than grades). Worksheets are streamed, but the shared-strings part is loaded whole, hence its own cap.
MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
MAX_SHARED_STRINGS_BYTES = 128 * 1024 * 1024
MAX_REMARKS = 2000
MAX_IMAGE_NAME = 255
MAX_RAW_VALUE = 200

GRADER_TYPES = ("resident", "resident2", "ai")
GRADER_TYPE_LABELS = {"resident": "Resident", "resident2": "Resident2", "ai": "AI"}

OLE2_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_SIGNATURES = (b"PK\x03\x04", b"PK\x05\x06")

MSG_NOT_SPREADSHEET = (
    "The file is not a spreadsheet{detected}. Upload an Excel workbook (.xlsx) or a CSV file with the columns "
    "image_name and {grade_column}."
)
MSG_LEGACY_XLS = (
    "This is a legacy Excel file (.xls) or a password-protected workbook, which cannot be read. Open it in Excel or "
    "LibreOffice and save it as an Excel workbook (.xlsx) without a password, or as CSV."
)
MSG_ODS = "OpenDocument spreadsheets (.ods) are not supported. Save the file as an Excel workbook (.xlsx) or as CSV."
MSG_HTML = (
    "The file is a web page (HTML), not a spreadsheet, even if its name says .xls. Open it in Excel or LibreOffice and "
    "save it as an Excel workbook (.xlsx) or as CSV."
)
MSG_CORRUPT_XLSX = (
    "The workbook could not be read ({detail}). Open it in Excel or LibreOffice, save it again as .xlsx and retry."
)
MSG_TOO_BIG_UNCOMPRESSED = (
    "The workbook expands to more than {max_mb} MB when opened, far more than a grade list needs. Remove other sheets "
    "and columns (keep image_name and the grade columns) and upload it again."
)
MSG_EMPTY = "The spreadsheet is empty: it has no rows. Put the header (image_name, {grade_column}) in the first row and one row per image below it."
MSG_NO_HEADER = (
    "No header row with an image_name column was found in the first {rows} rows. Columns found in the first "
    "non-empty row: {found}. The file needs the columns {expected} (names are matched ignoring case and spaces)."
)
MSG_MISSING_COLUMN = (
    "Required column {column!r} not found (header on row {row}). Columns found: {found}. For {type_label} grades the "
    "file needs {expected} (names are matched ignoring case and spaces)."
)
MSG_OTHER_TYPE_HINT = " The file has a {other!r} column: did you mean grader type {label}?"
MSG_DUPLICATE_COLUMN = (
    "The column {column!r} appears more than once in the header (columns {letters}). Keep one and upload again."
)
MSG_NO_ROWS = "The spreadsheet has a header row (row {row}) but no data rows below it."
MSG_TOO_MANY_ROWS = (
    "The file has more than {max_rows:,} data rows, the most one import accepts. Split it into several files of at "
    "most {max_rows:,} rows and import them one after the other."
)
MSG_FORMULAS = (
    "The file has {count} formula cell(s) without a saved result, for example {examples}. Such cells would read as "
    "blank. The file was probably written by a program that does not calculate formulas: open it in Excel or "
    "LibreOffice and save it again (or replace the formulas by their values), then upload it again."
)
MSG_CSV_DECODE = "The CSV file could not be read as text ({detail}). Save it as CSV UTF-8 and upload it again."


class SheetError(Exception):
    """The whole file is refused; ``message`` says what was wrong and what is allowed."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def normalise_header(value) -> str:
    """``" Image Name "``, ``IMAGE_NAME`` and ``image-name`` all become ``imagename``."""
    if value is None:
        return ""
    return re.sub(r"[\s_\-]+", "", str(value)).casefold()


def grade_column(grader_type: str) -> str:
    return f"{grader_type}_grade"


def remarks_column(grader_type: str) -> str:
    return f"{grader_type}_remarks"


PROBABILITY_COLUMN = "ai_probability"
IMAGE_COLUMN = "image_name"


def expected_columns(grader_type: str) -> tuple[list[str], list[str]]:
    """(required, optional) column names for a grader type."""
    optional = [remarks_column(grader_type)]
    if grader_type == "ai":
        optional.append(PROBABILITY_COLUMN)
    return [IMAGE_COLUMN, grade_column(grader_type)], optional


def describe_expected(grader_type: str) -> str:
    required, optional = expected_columns(grader_type)
    return " and ".join(required) + (" (optional: " + ", ".join(optional) + ")" if optional else "")


def cell_text(value) -> str:
    """A cell as text: numbers without a spurious ``.0`` (``2.0`` → ``"2"``), dates in ISO form, text stripped."""
    if type(value) is str:  # nearly every cell
        return value.strip()
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value).strip()


@dataclass
class ParsedRow:
    row: int  # as the spreadsheet shows it (1-based; CSV: record number)
    image_name: str
    value: str  # the grade cell as text ("" for blank)
    remarks: str = ""
    probability: object = None  # the cell as read (number or text), checked at import


@dataclass
class ParsedSheet:
    format: str  # "xlsx" | "csv"
    sheet: str
    header_row: int
    columns: list[str]  # the header as found (display)
    rows: list[ParsedRow] = field(default_factory=list)
    has_probability: bool = False
    has_remarks: bool = False


# --- Type sniffing --------------------------------------------------------------------------------------------------


def sniff_format(fileobj, grader_type: str | None = None) -> str:
    """ "xlsx" or "csv", or SheetError with what the file is instead. Reads the content, never the name."""
    expected = grade_column(grader_type) if grader_type else "<grader type>_grade"
    fileobj.seek(0)
    head = fileobj.read(SNIFF_BYTES)
    fileobj.seek(0)
    if not head:
        raise SheetError("The file is empty (0 bytes). Upload an Excel workbook (.xlsx) or a CSV file.")
    if head.startswith(OLE2_SIGNATURE):
        raise SheetError(MSG_LEGACY_XLS)
    if head.startswith(ZIP_SIGNATURES):
        try:
            with zipfile.ZipFile(fileobj) as archive:
                names = set(archive.namelist())
                if "mimetype" in names and b"opendocument" in archive.read("mimetype"):
                    raise SheetError(MSG_ODS)
        except zipfile.BadZipFile:
            raise SheetError(MSG_CORRUPT_XLSX.format(detail="damaged ZIP container")) from None
        finally:
            fileobj.seek(0)
        if "xl/workbook.xml" in names or any(n.endswith("workbook.xml") and n.startswith("xl/") for n in names):
            return "xlsx"
        raise SheetError(MSG_NOT_SPREADSHEET.format(detected=" (it is a ZIP archive)", grade_column=expected))
    if b"\x00" in head and not head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise SheetError(MSG_NOT_SPREADSHEET.format(detected=_detected(head), grade_column=expected))
    text = _decode_head(head)
    if text is None:
        raise SheetError(MSG_NOT_SPREADSHEET.format(detected=_detected(head), grade_column=expected))
    stripped = text.lstrip("\ufeff \t\r\n").lower()
    if stripped.startswith(("<!doctype html", "<html", "<table", "<?xml", "<meta")):
        raise SheetError(MSG_HTML)
    if stripped.startswith("{\\rtf") or stripped.startswith("%pdf"):
        raise SheetError(MSG_NOT_SPREADSHEET.format(detected=_detected(head), grade_column=expected))
    return "csv"


def _detected(head: bytes) -> str:
    try:
        import magic

        mime = magic.from_buffer(head, mime=True)
    except Exception:  # libmagic missing or confused: the message simply names no type
        return ""
    return f" (detected: {mime})" if mime else ""


def _decode_head(head: bytes) -> str | None:
    """The sniffed block as text, or None when it does not read as text."""
    text = None
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = head[: len(head) // 2 * 2].decode("utf-16")
        except UnicodeDecodeError:
            return None
    else:
        try:
            text = head.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            # The sniffed block may end inside a multi-byte character.
            if exc.start >= len(head) - 4:
                text = head[: exc.start].decode("utf-8-sig")
        if text is None:
            try:
                text = head.decode("cp1252")
            except UnicodeDecodeError:
                return None
    if not text:
        return None
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return text if printable >= 0.95 * len(text) else None


# --- Rows from the file ---------------------------------------------------------------------------------------------


def _xlsx_guard(fileobj) -> None:
    fileobj.seek(0)
    try:
        with zipfile.ZipFile(fileobj) as archive:
            infos = archive.infolist()
    except zipfile.BadZipFile:
        raise SheetError(MSG_CORRUPT_XLSX.format(detail="damaged ZIP container")) from None
    finally:
        fileobj.seek(0)
    total = sum(info.file_size for info in infos)
    shared = sum(info.file_size for info in infos if info.filename.lower().endswith("sharedstrings.xml"))
    if total > MAX_UNCOMPRESSED_BYTES or shared > MAX_SHARED_STRINGS_BYTES:
        raise SheetError(MSG_TOO_BIG_UNCOMPRESSED.format(max_mb=MAX_UNCOMPRESSED_BYTES // (1024 * 1024)))


def _csv_text(fileobj) -> io.TextIOBase:
    fileobj.seek(0)
    raw = fileobj.read()
    if raw.startswith(codecs.BOM_UTF8):
        encodings = ("utf-8-sig",)
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ("utf-16",)
    else:
        # Excel on Windows writes "CSV" in the ANSI code page; UTF-8 first, as it fails loudly when it is wrong.
        encodings = ("utf-8", "cp1252", "latin-1")
    for encoding in encodings:
        try:
            return io.StringIO(raw.decode(encoding), newline="")
        except UnicodeDecodeError as exc:
            last = exc
    raise SheetError(MSG_CSV_DECODE.format(detail=str(last)[:120]))


def _xlsx_rows(book: xlsx.Workbook, sheet: xlsx.Sheet) -> Iterator[tuple[int, tuple, dict | None]]:
    try:
        for row in book.rows(sheet):
            yield row.number, row.values, row.formulas
    except xlsx.WorkbookError as exc:
        raise SheetError(MSG_CORRUPT_XLSX.format(detail=str(exc))) from None


def _csv_rows(fileobj) -> Iterator[tuple[int, tuple, None]]:
    text = _csv_text(fileobj)
    sample = text.read(64 * 1024)
    text.seek(0)
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(text, dialect)
    try:
        for number, row in enumerate(reader, start=1):
            yield number, tuple(row), None
    except csv.Error as exc:
        raise SheetError(
            f"The CSV file is malformed near record {reader.line_num} ({exc}). Check quotes and separators."
        ) from None


# --- Header ----------------------------------------------------------------------------------------------------------


def _column_letter(index: int) -> str:
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def _find_header(rows: Iterator[tuple]) -> tuple[int, tuple, list[tuple[int, tuple]]] | None:
    """The header row (number, cells) within the first ``HEADER_SEARCH_ROWS`` rows, and the rows read past it
    (``-1`` and the rows seen when there is none); None when the sheet holds no row at all. The rows after the
    header stay in the iterator."""
    seen: list[tuple[int, tuple]] = []
    for number, row, _formulas in rows:
        seen.append((number, row))
        if number <= HEADER_SEARCH_ROWS and any(
            normalise_header(cell) == normalise_header(IMAGE_COLUMN) for cell in row
        ):
            return number, row, []
        if number >= HEADER_SEARCH_ROWS:
            break
    return None if not seen else (-1, (), seen)


def _found_list(cells) -> str:
    names = [cell_text(c) for c in cells if cell_text(c)]
    return ", ".join(repr(n) for n in names[:30]) + (" …" if len(names) > 30 else "") if names else "none"


def _column_indexes(header: tuple, header_row: int, grader_type: str) -> dict[str, int]:
    positions: dict[str, list[int]] = {}
    for index, cell in enumerate(header):
        key = normalise_header(cell)
        if key:
            positions.setdefault(key, []).append(index)
    required, optional = expected_columns(grader_type)
    found = _found_list(header)
    indexes: dict[str, int] = {}
    for column in required + optional:
        hits = positions.get(normalise_header(column), [])
        if len(hits) > 1:
            raise SheetError(
                MSG_DUPLICATE_COLUMN.format(column=column, letters=", ".join(_column_letter(i) for i in hits))
            )
        if hits:
            indexes[column] = hits[0]
        elif column in required:
            message = MSG_MISSING_COLUMN.format(
                column=column,
                row=header_row,
                found=found,
                type_label=GRADER_TYPE_LABELS[grader_type],
                expected=describe_expected(grader_type),
            )
            for other in GRADER_TYPES:
                if other != grader_type and normalise_header(grade_column(other)) in positions:
                    message += MSG_OTHER_TYPE_HINT.format(other=grade_column(other), label=GRADER_TYPE_LABELS[other])
                    break
            raise SheetError(message)
    return indexes


# --- The whole file -----------------------------------------------------------------------------------------------


def _cell(row: tuple, index: int | None):
    if index is None or index >= len(row):
        return None
    return row[index]


def _probability_cell(value):
    """Numbers stay numbers (checked at import); anything else is kept as text so it can be reported as given."""
    if value is None or (isinstance(value, int | float) and not isinstance(value, bool)):
        return value
    return _truncate(cell_text(value), 60)


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def read_grade_sheet(fileobj, *, grader_type: str, max_rows: int) -> ParsedSheet:
    """Read a grade spreadsheet for one grader type. Raises SheetError (nothing is imported) when the file cannot be
    used as a whole; row-level problems (unknown image, bad probability, ...) are left to the import, which lists them.
    """
    if grader_type not in GRADER_TYPES:
        raise ValueError(f"Unknown grader type {grader_type!r}")
    fmt = sniff_format(fileobj, grader_type)
    grade_col = grade_column(grader_type)
    if fmt == "xlsx":
        _xlsx_guard(fileobj)
        try:
            book = xlsx.Workbook(fileobj)
        except xlsx.WorkbookError as exc:
            raise SheetError(MSG_CORRUPT_XLSX.format(detail=str(exc))) from None
        with book:
            return _read_xlsx(book, grader_type, max_rows, grade_col)
    rows = _csv_rows(fileobj)
    return _read_rows(rows, _find_header(rows), "csv", "", grader_type, max_rows, grade_col)


def _read_xlsx(book: xlsx.Workbook, grader_type: str, max_rows: int, grade_col: str) -> ParsedSheet:
    # The first sheet with an image_name header holds the grades (a template's other sheets explain values).
    first_nonempty = None
    for sheet in book.sheets:
        rows = _xlsx_rows(book, sheet)
        found = _find_header(rows)
        if found is None:
            continue
        if found[0] > 0:
            return _read_rows(rows, found, "xlsx", sheet.name, grader_type, max_rows, grade_col)
        if first_nonempty is None:
            first_nonempty = next((row for _, row in found[2] if any(cell_text(c) for c in row)), None)
    if first_nonempty is None:
        raise SheetError(MSG_EMPTY.format(grade_column=grade_col))
    raise SheetError(
        MSG_NO_HEADER.format(
            rows=HEADER_SEARCH_ROWS, found=_found_list(first_nonempty), expected=describe_expected(grader_type)
        )
    )


def _read_rows(rows, found, fmt, sheet_name, grader_type, max_rows, grade_col) -> ParsedSheet:
    """The data rows below the header ``found`` (what ``_find_header`` returned for ``rows``)."""
    if found is None:
        raise SheetError(MSG_EMPTY.format(grade_column=grade_col))
    header_row, header, seen = found
    if header_row < 0:
        first = next((row for _, row in seen if any(cell_text(c) for c in row)), None)
        if first is None:
            raise SheetError(MSG_EMPTY.format(grade_column=grade_col))
        raise SheetError(
            MSG_NO_HEADER.format(
                rows=HEADER_SEARCH_ROWS, found=_found_list(first), expected=describe_expected(grader_type)
            )
        )
    indexes = _column_indexes(header, header_row, grader_type)
    i_name = indexes[IMAGE_COLUMN]
    i_grade = indexes[grade_col]
    i_remarks = indexes.get(remarks_column(grader_type))
    i_prob = indexes.get(PROBABILITY_COLUMN)
    # Formula cells without a saved result in the columns read: they read as blank, so the file is refused.
    blank_formulas: list[str] = []
    parsed = ParsedSheet(
        format=fmt,
        sheet=sheet_name,
        header_row=header_row,
        columns=[cell_text(c) for c in header if cell_text(c)],
        has_probability=i_prob is not None,
        has_remarks=i_remarks is not None,
    )
    out = parsed.rows
    names = {i_name: IMAGE_COLUMN, i_grade: grade_col}
    if i_remarks is not None:
        names[i_remarks] = remarks_column(grader_type)
    if i_prob is not None:
        names[i_prob] = PROBABILITY_COLUMN
    for number, row, formulas in rows:
        if formulas:
            blank_formulas.extend(
                f"{_column_letter(index)}{number} ({names[index]}: {formulas[index][:40]})"
                for index in sorted(formulas)
                if index in names
            )
        name = cell_text(_cell(row, i_name))
        value = cell_text(_cell(row, i_grade))
        remarks = cell_text(_cell(row, i_remarks))
        prob_cell = _cell(row, i_prob)
        if not name and not value and not remarks and cell_text(prob_cell) == "":
            continue  # an empty line (trailing rows, spacing)
        if len(out) >= max_rows:
            raise SheetError(MSG_TOO_MANY_ROWS.format(max_rows=max_rows))
        out.append(
            ParsedRow(
                row=number,
                image_name=_truncate(name, MAX_IMAGE_NAME),
                value=_truncate(value, MAX_RAW_VALUE),
                remarks=_truncate(remarks, MAX_REMARKS),
                probability=_probability_cell(prob_cell),
            )
        )
    if blank_formulas:
        examples = ", ".join(blank_formulas[:5]) + (" …" if len(blank_formulas) > 5 else "")
        raise SheetError(MSG_FORMULAS.format(count=len(blank_formulas), examples=examples))
    if not out:
        raise SheetError(MSG_NO_ROWS.format(row=header_row))
    return parsed
