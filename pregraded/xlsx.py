"""Reading the worksheets of an .xlsx workbook row by row, in one pass.

A grade workbook is read for its values only: the values the writing program saved (what openpyxl's read-only mode
gives with ``data_only=True``: text, numbers, booleans, dates for date-formatted numbers, error codes as text), and,
in the same pass, the formula of every cell that has one but no saved result (such a cell reads as blank, and the
import refuses the file rather than import blanks). The work per cell is a few dictionary look-ups, where a general
reader builds a cell object with its style: a 10,000-row sheet reads several times faster.

No database and no Django here. Damaged parts raise ``WorkbookError`` with a short description; the caller words the
message. All XML is parsed by expat, which fetches no external entities and refuses entity expansion bombs; a part
that declares a document type is refused outright, as no spreadsheet program writes one.

Two paths read a worksheet. A sheet up to ``PLAIN_MAX_BYTES`` is read whole and checked by expat; when every cell
has the plain form writers give it (``_PLAIN_CELL``), one regular expression reads the cells. Otherwise (formulas,
rich text, prefixes, ...), and for larger sheets, streamed, expat handlers read it keeping only the current row.
Both give the same rows (tests compare them). The small parts (workbook, relationships, styles, shared strings) go
through ElementTree.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import posixpath
import pyexpat
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from xml.etree.ElementTree import Element, ParseError, XMLPullParser

from openpyxl.styles.numbers import BUILTIN_FORMATS, is_date_format, is_timedelta_format
from openpyxl.utils.datetime import CALENDAR_MAC_1904, CALENDAR_WINDOWS_1900, from_excel

CHUNK = 1 << 16
# Worksheets up to this size (uncompressed) are read whole and tried on the plain path first (``_plain_rows``); a
# 50,000-row grade sheet is about 8 MB. Larger ones are streamed.
PLAIN_MAX_BYTES = 32 * 1024 * 1024
# Transitional (what every program writes) and Strict OOXML spell the same elements in different namespaces.
MAIN_NAMESPACES = (
    "http://schemas.openxmlformats.org/spreadsheetml/2006/main",
    "http://purl.oclc.org/ooxml/spreadsheetml/main",
)
REL_NAMESPACES = (
    "http://schemas.openxmlformats.org/officeDocument/2006/relationships",
    "http://purl.oclc.org/ooxml/officeDocument/relationships",
)
OFFICE_DOCUMENT = "/officeDocument"
WORKSHEET = "/worksheet"
SHARED_STRINGS = "/sharedStrings"
STYLES = "/styles"
_DOCTYPE = re.compile(rb"<!(?:DOCTYPE|ENTITY)", re.IGNORECASE)


def _tags(local: str) -> frozenset[str]:
    return frozenset([local, *(f"{{{ns}}}{local}" for ns in MAIN_NAMESPACES)])


TEXT, RUN, SHARED_ITEM, SST = (_tags(name) for name in ("t", "r", "si", "sst"))


class WorkbookError(Exception):
    """The workbook cannot be read; the text says which part and why, in a few words."""


@dataclass(frozen=True)
class Sheet:
    name: str
    part: str  # the worksheet's path inside the ZIP


@dataclass
class Row:
    number: int  # as the spreadsheet shows it (1-based)
    values: tuple  # from column A, None where there is no value
    formulas: dict[int, str] | None = None  # column index → formula, for formula cells without a saved value


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _attr(element: Element, name: str) -> str | None:
    """An attribute in any of the relationship namespaces (``r:id``)."""
    for ns in REL_NAMESPACES:
        value = element.get(f"{{{ns}}}{name}")
        if value is not None:
            return value
    return None


def _events(member, events: tuple[str, ...]) -> Iterator[tuple[str, Element]]:
    parser = XMLPullParser(events)
    first = True
    while chunk := member.read(CHUNK):
        if first:
            if _DOCTYPE.search(chunk[:4096]):
                raise WorkbookError("an XML part declares a document type")
            first = False
        parser.feed(chunk)
        yield from parser.read_events()
    parser.close()
    yield from parser.read_events()


def _text(element: Element) -> str:
    """The text of a shared or inline string: its ``t`` runs, without phonetic guides (``rPh``)."""
    parts = []
    for child in element:
        tag = child.tag
        if tag in TEXT:
            parts.append(child.text or "")
        elif tag in RUN:
            for run_child in child:
                if run_child.tag in TEXT:
                    parts.append(run_child.text or "")
    return "".join(parts)


_LETTERS: dict[str, int] = {}


def _column(ref: str) -> int:
    """0-based column index of a cell reference (``"AB12"`` → 27)."""
    letters = ref.rstrip("0123456789")
    index = _LETTERS.get(letters)
    if index is None:
        index = 0
        for char in letters.upper():
            if not "A" <= char <= "Z":
                raise WorkbookError(f"bad cell reference {ref[:20]!r}")
            index = index * 26 + ord(char) - 64
        index -= 1
        if index < 0:
            raise WorkbookError(f"bad cell reference {ref[:20]!r}")
        _LETTERS[letters] = index
    return index


def _number(text: str):
    if "." in text or "E" in text or "e" in text:
        return float(text)
    try:
        return int(text)
    except ValueError:
        return float(text)  # "INF", "NaN" and the like, as openpyxl reads them


class Workbook:
    """An open .xlsx file (a seekable binary file object). ``sheets`` in workbook order; ``rows(sheet)`` streams a
    sheet. Shared strings and date styles are read once, on first use."""

    def __init__(self, fileobj):
        try:
            self._zip = zipfile.ZipFile(fileobj)
            names = self._zip.namelist()
        except (zipfile.BadZipFile, OSError) as exc:
            raise WorkbookError(f"damaged ZIP container ({exc})") from None
        self._names = {name.lower(): name for name in names}
        self._strings: list[str] | None = None
        self._styles: tuple[frozenset[int], frozenset[int]] | None = None
        try:
            self._read_workbook()
        except (ParseError, KeyError, ValueError) as exc:
            raise WorkbookError(f"the workbook part is damaged ({type(exc).__name__})") from None

    def close(self) -> None:
        self._zip.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- the parts ---------------------------------------------------------------------------------------------------

    def _name(self, path: str) -> str:
        """The ZIP entry of a part (part names are case-insensitive)."""
        name = self._names.get(path.lstrip("/").lower())
        if name is None:
            raise WorkbookError(f"the part {path!r} is missing")
        return name

    def _member(self, path: str):
        name = self._name(path)
        try:
            return self._zip.open(name)
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
            raise WorkbookError(f"the part {path!r} cannot be opened ({exc})") from None

    def _relationships(self, part: str) -> dict[str, tuple[str, str]]:
        """``{id: (type suffix, target path)}`` of a part's relationships (``xl/_rels/workbook.xml.rels``)."""
        folder, _, base = part.strip("/").rpartition("/")
        rels = f"{folder}/_rels/{base}.rels" if folder else f"_rels/{base}.rels"
        if rels.lower() not in self._names:
            return {}
        out = {}
        with self._member(rels) as member:
            for _event, element in _events(member, ("end",)):
                if _local(element.tag) != "Relationship":
                    continue
                target = element.get("Target") or ""
                if element.get("TargetMode") == "External":
                    continue
                path = posixpath.normpath(target if target.startswith("/") else f"{folder}/{target}").lstrip("/")
                kind = element.get("Type") or ""
                out[element.get("Id") or ""] = (kind[kind.rfind("/") :], path)
        return out

    def _read_workbook(self) -> None:
        root_rels = self._relationships("")
        part = next((path for kind, path in root_rels.values() if kind == OFFICE_DOCUMENT), "xl/workbook.xml")
        rels = self._relationships(part)
        self._shared_part = next((path for kind, path in rels.values() if kind == SHARED_STRINGS), None)
        self._styles_part = next((path for kind, path in rels.values() if kind == STYLES), None)
        self.sheets: list[Sheet] = []
        self._epoch = CALENDAR_WINDOWS_1900
        with self._member(part) as member:
            for _event, element in _events(member, ("end",)):
                local = _local(element.tag)
                if local == "sheet":
                    found = rels.get(_attr(element, "id") or "")
                    if found is not None and found[0] == WORKSHEET:  # chart sheets and dialogs hold no cells
                        self.sheets.append(Sheet(name=element.get("name") or "", part=found[1]))
                elif local == "workbookPr" and (element.get("date1904") or "").lower() in ("1", "true"):
                    self._epoch = CALENDAR_MAC_1904

    def _shared_strings(self) -> list[str]:
        if self._strings is None:
            strings: list[str] = []
            if self._shared_part:
                with self._member(self._shared_part) as member:
                    parent = None
                    for event, element in _events(member, ("start", "end")):
                        if event == "start":
                            if element.tag in SST:
                                parent = element
                        elif element.tag in SHARED_ITEM:
                            strings.append(_text(element))
                            if parent is not None:
                                parent.clear()
            self._strings = strings
        return self._strings

    def _date_styles(self) -> tuple[frozenset[int], frozenset[int]]:
        """(style indexes of date formats, of those the elapsed-time formats) from the cell formats of the styles."""
        if self._styles is None:
            custom: dict[int, str] = {}
            formats: list[int] = []
            if self._styles_part:
                with self._member(self._styles_part) as member:
                    in_cell_xfs = False
                    for event, element in _events(member, ("start", "end")):
                        local = _local(element.tag)
                        if local == "cellXfs":
                            in_cell_xfs = event == "start"
                        elif event == "end" and local == "numFmt":
                            custom[int(element.get("numFmtId") or -1)] = element.get("formatCode") or ""
                        elif event == "end" and local == "xf" and in_cell_xfs:
                            formats.append(int(element.get("numFmtId") or 0))
            dates, elapsed = set(), set()
            for index, fmt_id in enumerate(formats):
                code = custom.get(fmt_id, BUILTIN_FORMATS.get(fmt_id))
                if code and is_date_format(code):
                    dates.add(index)
                    if is_timedelta_format(code):
                        elapsed.add(index)
            self._styles = (frozenset(dates), frozenset(elapsed))
        return self._styles

    # --- cells -------------------------------------------------------------------------------------------------------

    def rows(self, sheet: Sheet) -> Iterator[Row]:
        """The rows of a sheet that hold at least one cell, in order. Raises WorkbookError when a part is damaged."""
        try:
            yield from self._rows(sheet)
        except WorkbookError as exc:
            raise WorkbookError(f"the sheet {sheet.name!r} is damaged: {exc}") from None
        except (ParseError, pyexpat.ExpatError, ValueError, IndexError, KeyError, OverflowError, EOFError) as exc:
            raise WorkbookError(f"the sheet {sheet.name!r} is damaged ({type(exc).__name__})") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise WorkbookError(f"the sheet {sheet.name!r} cannot be read ({exc})") from None

    def _rows(self, sheet: Sheet) -> Iterator[Row]:
        context = (self._shared_strings(), *self._date_styles(), self._epoch)
        with self._member(sheet.part) as member:
            if self._size(sheet.part) > PLAIN_MAX_BYTES:
                yield from _sheet_rows(member, *context)
                return
            data = member.read()
        _check_xml(data)
        rows = _plain_rows(data, *context)
        yield from rows if rows is not None else _sheet_rows(io.BytesIO(data), *context)

    def _size(self, path: str) -> int:
        return self._zip.getinfo(self._name(path)).file_size


def _excel_date(value, epoch, elapsed: bool):
    """A date-formatted number as openpyxl gives it: a datetime (a timedelta for elapsed-time formats)."""
    try:
        return from_excel(value, epoch, timedelta=elapsed)
    except (OverflowError, ValueError):
        return "#VALUE!"  # a date-formatted number outside the calendar, as Excel shows it


def _value(kind: str, raw: str, style: str | None, strings: list[str], dates, elapsed, epoch):
    """A cell's value from its type (``t``), its saved value (``v``, not empty) and its style: what openpyxl's
    read-only mode gives. Both reading paths use it (inline strings aside)."""
    if kind == "s":
        return strings[int(raw)]
    if kind == "n":
        value = _number(raw)
        if style and dates and int(style) in dates:
            value = _excel_date(value, epoch, int(style) in elapsed)
        return value
    if kind == "b":
        return bool(int(raw))
    if kind == "d":
        return _iso_date(raw)
    return raw  # "str" (a formula's text result), "e" (an error such as #N/A)


def _iso_date(text: str):
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text


def _refuse_doctype(*_args):
    raise WorkbookError("an XML part declares a document type")


def _check_xml(data: bytes) -> None:
    """Refuse a part that is not well-formed XML or declares a document type (expat alone, no handlers: fast)."""
    parser = pyexpat.ParserCreate()
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.Parse(data, True)


# The form nearly every writer gives a cell (Excel, LibreOffice, openpyxl, xlsxwriter): a reference, then optionally
# a style and a type, then nothing, a value, or an inline string without rich text. Formulas, rich text, other
# attributes or attribute orders, prefixes or comments are not matched, and send the sheet to the general path.
_PLAIN_CELL = re.compile(
    r'<c r="([A-Z]{1,3})([0-9]{1,7})"(?: s="([0-9]{1,6})")?(?: t="(s|n|b|str|e|d|inlineStr)")?\s*'
    r'(?:/>|>(?:<v>([^<]*)</v>|(<is><t(?: xml:space="preserve")?>[^<]*</t></is>))?</c>)'
)
_ROW_MARKUP_ONLY = re.compile(r"(?:<row(?:\s[^<>]*)?/?>|</row>|\s+)*")
_SHEET_DATA = re.compile(r"<sheetData\s*/>|<sheetData\s*>(.*)</sheetData\s*>", re.S)


def _plain_rows(data: bytes, strings, dates, elapsed, epoch) -> list[Row] | None:
    """The rows of a well-formed worksheet whose cells all have the plain form (``_PLAIN_CELL``), read by one
    regular expression instead of a handler call per element (several times faster); None when anything in the
    sheet's data is not of that form or between cells is not row markup (the caller then takes the general path). A
    cell's row is the one its reference names (rows must come in order); rows without a value are left out, as on
    the general path."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    found = _SHEET_DATA.search(text)
    if found is None:
        return None
    start, end = found.span(1) if found.group(1) is not None else (0, 0)
    out: list[Row] = []
    cells: dict[int, object] = {}
    row_digits = ""
    number = 0
    position = start  # where the last cell read ended: only row markup may come between cells
    for match in _PLAIN_CELL.finditer(text, start, end):
        if match.start() != position and not _ROW_MARKUP_ONLY.fullmatch(text, position, match.start()):
            return None
        position = match.end()
        letters, digits, style, kind, raw, inline = match.groups()
        if digits != row_digits:  # a new row (cells come row by row)
            if cells:
                out.append(_row(number, cells))
                cells = {}
            previous, number, row_digits = number, int(digits), digits
            if number <= previous:
                return None  # rows out of order: left to the general path
        if kind == "inlineStr":
            if not inline:
                continue
            value = inline[inline.index(">", 4) + 1 : -9]  # between <t ...> and </t></is>
            if "&" in value:
                value = html.unescape(value)  # the XML escapes (the part is well-formed: no other entity)
        elif not raw:
            continue
        else:
            if "&" in raw:  # text ("str", "e") with XML escapes, which expat resolves on the general path
                raw = html.unescape(raw)
            value = _value(kind or "n", raw, style, strings, dates, elapsed, epoch)
        column = _LETTERS.get(letters)
        cells[_column(letters) if column is None else column] = value
    if position != end and not _ROW_MARKUP_ONLY.fullmatch(text, position, end):
        return None
    if cells:
        out.append(_row(number, cells))
    return out


def _row(number: int, cells: dict[int, object]) -> Row:
    values = [None] * (max(cells) + 1)
    for index, value in cells.items():
        values[index] = value
    return Row(number, tuple(values), None)


def _sheet_rows(member, strings: list[str], dates: frozenset[int], elapsed: frozenset[int], epoch) -> Iterator[Row]:
    """The rows of a worksheet part, through expat handlers that keep only the current row.

    Element names are compared without namespace processing, with the prefix the worksheet element uses (``x:c``
    when it is ``x:worksheet``), and only inside ``sheetData``: extension elements elsewhere in the sheet, whatever
    their namespace, are never read as cells. The handlers are closures over local state (the cost of a sheet is
    the cost of its ~9 handler calls per cell)."""
    finished: list[Row] = []
    names: dict[str, str] = {}  # this part's element names → local names, for the names that matter
    shared_formulas: dict[str, str] = {}
    # The state of the row and cell being read.
    in_data = phonetic = False
    number = 0
    column = -1
    cells: dict[int, object] = {}
    formulas: dict[int, str] | None = None
    kind = style = raw = formula = None
    formula_attrs: dict = {}
    inline: list[str] | None = None
    text: list[str] | None = None  # the text of the element being read, when it is one we read

    def chars(data: str) -> None:
        if text is not None:
            text.append(data)

    def start(name: str, attrs: dict) -> None:
        nonlocal in_data, phonetic, number, column, cells, formulas, kind, style, raw, formula, inline, text
        nonlocal formula_attrs
        local = names.get(name)
        if not in_data:
            if not names:  # the root element: learn the prefix of the main namespace
                prefix = name[: name.index(":") + 1] if ":" in name else ""
                for item in ("sheetData", "row", "c", "v", "f", "is", "t", "rPh"):
                    names[prefix + item] = item
            elif local == "sheetData":
                in_data = True
            return
        if local == "c":
            ref = attrs.get("r")
            column = _column(ref) if ref else column + 1
            kind = attrs.get("t") or "n"
            style = attrs.get("s")
            raw = formula = inline = None
        elif local == "v":
            text = []
        elif local == "row":
            given = attrs.get("r")
            number = int(given) if given else number + 1
            column = -1
            cells = {}
            formulas = None
        elif local == "f":
            text = []
            formula_attrs = attrs
        elif local == "is":
            inline = []
        elif local == "t":
            if inline is not None and not phonetic:
                text = []
        elif local == "rPh":
            phonetic = True

    def end(name: str) -> None:
        nonlocal in_data, phonetic, raw, formula, formulas, text
        if not in_data:
            return
        local = names.get(name)
        if local == "v":
            raw = "".join(text)
            text = None
        elif local == "c":
            if kind == "inlineStr":
                value = "".join(inline) if inline is not None else None
            elif not raw:
                value = None
            else:
                value = _value(kind, raw, style, strings, dates, elapsed, epoch)
            if value is not None:
                cells[column] = value
            if formula is not None:
                found = formula
                index = formula_attrs.get("si")
                if formula_attrs.get("t") == "shared" and index is not None:
                    found = shared_formulas.setdefault(index, found) if found else shared_formulas.get(index, "")
                if value is None:
                    if formulas is None:
                        formulas = {}
                    formulas[column] = "=" + found if found else "(shared formula)"
        elif local == "row":
            if cells or formulas:
                values = [None] * (max(cells) + 1 if cells else 0)
                for index, value in cells.items():
                    values[index] = value
                finished.append(Row(number, tuple(values), formulas))
        elif local == "f":
            formula = "".join(text)
            text = None
        elif local == "t":
            if text is not None:
                inline.append("".join(text))
                text = None
        elif local == "rPh":
            phonetic = False
        elif local == "sheetData":
            in_data = False

    parser = pyexpat.ParserCreate()
    parser.buffer_text = True
    parser.StartDoctypeDeclHandler = _refuse_doctype
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = chars
    while chunk := member.read(CHUNK):
        parser.Parse(chunk, False)
        if finished:
            yield from finished
            finished.clear()
    parser.Parse(b"", True)
    yield from finished
