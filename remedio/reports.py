"""Medios AI report PDFs: text (text layer first, OCR of rasterised pages otherwise) and the results in it.

Reading (``read_pdf``) touches files and Tesseract; parsing (``parse``) is pure, so every result string and layout
variant is easy to test. A report that cannot be read raises ReportUnreadable with the reason a verifier is shown.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

# Tesseract's own threads would compete with the other worker processes (one worker process per core).
os.environ.setdefault("OMP_THREAD_LIMIT", "1")

# A page with fewer letters and digits than this in its text layer is treated as rasterised and read by OCR.
MIN_TEXT_LAYER_CHARS = 20

MSG_ENCRYPTED = "The report PDF is encrypted (password-protected), so it cannot be read: enter its results by hand."
MSG_CORRUPT = "The report PDF is corrupt or truncated and cannot be opened: enter its results by hand."
MSG_NO_PAGES = "The report PDF has no pages: enter its results by hand."
MSG_NO_OCR = "The report pages are images and OCR (Tesseract) is not available on this server: enter the results by hand."
MSG_OCR_FAILED = "OCR of the report failed ({detail}): enter the results by hand."
MSG_NO_TEXT = "No text could be read from the report (blank or illegible pages): enter its results by hand."
MSG_NO_RESULT = "No Medios AI result was found in the report text: enter its results by hand."


class ReportUnreadable(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class ReportText:
    pages: list[str]
    method: str  # "text", "ocr" or "mixed"

    @property
    def text(self) -> str:
        return "\n\n".join(self.pages).strip()


def _meaningful(text: str) -> int:
    return sum(ch.isalnum() for ch in text or "")


def read_pdf(path: Path) -> ReportText:
    """The text of every page: the text layer when a page has one, OCR of the rendered page otherwise."""
    import pdfplumber
    from pdfminer.pdfdocument import PDFEncryptionError, PDFPasswordIncorrect

    layer: list[str] | None = None
    try:
        with pdfplumber.open(path) as pdf:
            layer = [(page.extract_text() or "") for page in pdf.pages]
    except Exception as exc:  # pdfminer raises many types on damaged files; pdfium decides below
        cause = getattr(exc, "__cause__", None) or exc
        if isinstance(cause, PDFPasswordIncorrect | PDFEncryptionError) or isinstance(exc, PDFPasswordIncorrect):
            raise ReportUnreadable(MSG_ENCRYPTED) from exc
        log.info("pdfplumber could not read a report (%s); trying pdfium", exc.__class__.__name__)
    return _with_ocr(path, layer)


def _with_ocr(path: Path, layer: list[str] | None) -> ReportText:
    import pypdfium2 as pdfium

    try:
        document = pdfium.PdfDocument(str(path))
    except pdfium.PdfiumError as exc:
        if "password" in str(exc).lower():
            raise ReportUnreadable(MSG_ENCRYPTED) from exc
        raise ReportUnreadable(MSG_CORRUPT) from exc
    try:
        count = len(document)
        if count == 0:
            raise ReportUnreadable(MSG_NO_PAGES)
        pages, used_layer, used_ocr = [], False, False
        for index in range(count):
            text = layer[index] if layer is not None and index < len(layer) else ""
            if _meaningful(text) >= MIN_TEXT_LAYER_CHARS:
                used_layer = True
            else:
                text = ocr_page(document[index])
                used_ocr = True
            pages.append(text)
    finally:
        document.close()
    method = "mixed" if used_layer and used_ocr else ("ocr" if used_ocr else "text")
    result = ReportText(pages=pages, method=method)
    if _meaningful(result.text) < 3:
        raise ReportUnreadable(MSG_NO_TEXT)
    return result


def render_page(page, dpi: int | None = None):
    """A page as a greyscale PIL image at ``REMEDIO_OCR_DPI``."""
    import pypdfium2 as pdfium

    dpi = dpi or settings.REMEDIO_OCR_DPI
    try:
        bitmap = page.render(scale=dpi / 72, grayscale=True)
    except pdfium.PdfiumError as exc:
        raise ReportUnreadable(MSG_CORRUPT) from exc
    return bitmap.to_pil()


def ocr_image(image) -> str:
    import pytesseract

    try:
        return pytesseract.image_to_string(
            image,
            lang=settings.REMEDIO_OCR_LANGUAGE,
            config="--psm 3 -c tessedit_do_invert=0",
            timeout=settings.REMEDIO_OCR_TIMEOUT_SECONDS,
        )
    except pytesseract.TesseractNotFoundError as exc:
        log.error("Tesseract is not installed: rasterised reports cannot be read (scripts/system-deps.sh)")
        raise ReportUnreadable(MSG_NO_OCR) from exc
    except (pytesseract.TesseractError, RuntimeError) as exc:
        detail = "timed out" if "timeout" in str(exc).lower() else "Tesseract error"
        raise ReportUnreadable(MSG_OCR_FAILED.format(detail=detail)) from exc


def ocr_page(page) -> str:
    return ocr_image(render_page(page))


# --- Parsing ---------------------------------------------------------------------------------------------------------

DR_NEGATIVE = "No signs of DR detected"
DR_POSITIVE = "Signs of DR detected"
DR_AMD_NEGATIVE = "No signs of DR or AMD detected"
DR_AMD_POSITIVE = "Signs of DR or AMD detected"
AMD_NEGATIVE = "No signs of AMD detected"
AMD_POSITIVE = "Signs of AMD detected"
GLAUCOMA_NEGATIVE = "No Referable Glaucoma"
GLAUCOMA_POSITIVE = "Referable Glaucoma"
GLAUCOMA_REFERRAL = "Referable Glaucoma - Referral suggested"
GLAUCOMA_IMMEDIATE = "Referable Glaucoma - Refer immediately"

DR_RESULTS = {DR_NEGATIVE: False, DR_POSITIVE: True, DR_AMD_NEGATIVE: False, DR_AMD_POSITIVE: True}
AMD_RESULTS = {AMD_NEGATIVE: False, AMD_POSITIVE: True, DR_AMD_NEGATIVE: False, DR_AMD_POSITIVE: True}
GLAUCOMA_RESULTS = {
    GLAUCOMA_NEGATIVE: False,
    GLAUCOMA_POSITIVE: True,
    GLAUCOMA_REFERRAL: True,
    GLAUCOMA_IMMEDIATE: True,
}

# OCR reads "o" as "0" and joins or splits words; the patterns allow for both.
_NO = r"n[o0]"
_DR_FAMILY = re.compile(
    rf"(?<![a-z])({_NO}\s*)?signs?\s*[o0]f\s*(dr\s*(?:or|/|&|and)\s*amd|amd\s*(?:or|/|&|and)\s*dr|dr|amd)"
    r"\s*(?:(?:were|was|is|are)\s*)?(?:detected|found)"
)
_GLAUCOMA = re.compile(rf"(?<![a-z])({_NO}\s*-?\s*)?referable\s*gla(?:uc|cu)[o0](?:m|rn)a")
_VCDR = re.compile(r"v\s*\.?\s*c\s*\.?\s*d\s*\.?\s*r\s*[-:=]*\s*((?:[0o]\s*)?[.,]\s*\d{1,2}|1(?:\s*[.,]\s*0{1,2})?)(?![.,]?\d)")
_RIGHT = re.compile(r"(?<![a-z])(?:right|(?:od|r\s*/\s*e|re)(?![a-z]))")
_LEFT = re.compile(r"(?<![a-z])(?:left|(?:os|l\s*/\s*e|le)(?![a-z]))")
_VERSION = re.compile(r"medios\s*(?:ai)?[^\n]{0,20}?v(?:ersion|er\.?)?\s*[:.]?\s*(\d+(?:\.\d+){1,3})")
_TITLES = {
    "dr": re.compile(r"diabetic\s*retinopathy\s*(?:screening\s*)?report"),
    "glaucoma": re.compile(r"gla(?:uc|cu)[o0]ma\s*(?:screening\s*)?report|screening\s*result"),
}
_AGE = re.compile(r"(?<![a-z])age\s*(?:/\s*(?:sex|gender))?\s*[:\-]?\s*(\d{1,3})(?!\d)")
_SEX = re.compile(r"(?<![a-z])(?:sex|gender)\s*[:\-]?\s*(male|female|other|m|f|o)(?![a-z])")
_AGE_SEX = re.compile(r"(?<![a-z])age\s*/\s*(?:sex|gender)\s*[:\-]?\s*(\d{1,3})\s*(?:y(?:ea)?rs?|y)?\s*/\s*(male|female|m|f|o)(?![a-z])")
_LABEL = re.compile(
    r"(?i)(?<![A-Za-z])(patient\s*name|name|patient\s*id|mrn|uhid|p\.?\s*id|id|age\s*/\s*(?:sex|gender)|age|sex|gender|"
    r"dob|date\s*of\s*birth|phone|mobile|contact|address)\s*[:#]"
)
_NAME_LINE = re.compile(
    r"(?i)(?<![A-Za-z])(?:patient\s*)?name\s*[:\-]\s*(.+?)(?=\s{2,}|\s+(?:age|sex|gender|id|patient\s*id|mrn|date)\b|$)"
)
_ID_LINE = re.compile(r"(?i)(?<![A-Za-z])(?:patient\s*id|mrn|uhid|id)\s*[:#\-]\s*([A-Za-z0-9][A-Za-z0-9\-/]*)")


@dataclass
class Header:
    """Identifying header fields, if the report shows them. Never stored in clear."""

    name: str = ""
    patient_id: str = ""
    age: int | None = None
    sex: str = ""


@dataclass
class ParsedReport:
    kind: str = "unknown"
    dr_result: str = ""
    dr_referable: bool | None = None
    amd_result: str = ""
    amd_referable: bool | None = None
    glaucoma_result: str = ""
    glaucoma_referable: bool | None = None
    vcdr_od: Decimal | None = None
    vcdr_os: Decimal | None = None
    model_version: str = ""
    missing: list[str] = field(default_factory=list)
    header: Header = field(default_factory=Header)

    @property
    def has_result(self) -> bool:
        return bool(self.dr_result or self.amd_result or self.glaucoma_result)

    def as_dict(self) -> dict:
        """The results (no identifiers), for the audit copy of what was read."""
        return {
            "kind": self.kind,
            "dr_result": self.dr_result,
            "dr_referable": self.dr_referable,
            "amd_result": self.amd_result,
            "amd_referable": self.amd_referable,
            "glaucoma_result": self.glaucoma_result,
            "glaucoma_referable": self.glaucoma_referable,
            "vcdr_od": str(self.vcdr_od) if self.vcdr_od is not None else None,
            "vcdr_os": str(self.vcdr_os) if self.vcdr_os is not None else None,
            "model_version": self.model_version,
            "missing": list(self.missing),
        }


def normalise(text: str) -> str:
    """Lower case, one kind of dash, single spaces (line breaks become spaces)."""
    text = (text or "").lower()
    text = re.sub(r"[\u2010-\u2015\u2212]", "-", text)
    return re.sub(r"\s+", " ", text).strip()


def _after(flat: str, anchor: re.Pattern) -> str:
    match = anchor.search(flat)
    return flat[match.start() :] if match else ""


def _dr_family(flat: str):
    """The DR/AMD result: the one after "result" if the report has such a line, else the first one."""
    preferred = _after(flat, re.compile(r"result\s*(?:dr|amd)?\s*[:\-]"))
    return _DR_FAMILY.search(preferred) or _DR_FAMILY.search(flat)


def _glaucoma(flat: str):
    preferred = _after(flat, re.compile(r"screening\s*result"))
    for text in (preferred, flat):
        for match in _GLAUCOMA.finditer(text):
            return match, text
    return None, flat


def _decimal(raw: str) -> Decimal | None:
    raw = re.sub(r"\s", "", raw).replace(",", ".").replace("o", "0")
    if raw.startswith("."):
        raw = "0" + raw
    try:
        value = Decimal(raw).quantize(Decimal("0.01"))
    except ArithmeticError:
        return None
    return value if Decimal(0) <= value <= Decimal(1) else None


def _vcdr(flat: str) -> tuple[Decimal | None, Decimal | None]:
    """VCDR of the right eye then the left eye; eye labels before a value win over that order."""
    found = []
    previous_end = 0
    for match in _VCDR.finditer(flat):
        value = _decimal(match.group(1))
        if value is None:
            continue
        before = flat[max(previous_end, match.start() - 60) : match.start()]
        rights = [m.end() for m in _RIGHT.finditer(before)]
        lefts = [m.end() for m in _LEFT.finditer(before)]
        eye = None
        if rights or lefts:
            eye = "od" if max(rights or [-1]) > max(lefts or [-1]) else "os"
        found.append((eye, value))
        previous_end = match.end()
    od = next((v for eye, v in found if eye == "od"), None)
    os_ = next((v for eye, v in found if eye == "os"), None)
    unlabelled = [v for eye, v in found if eye is None]
    if od is None and unlabelled:
        od = unlabelled.pop(0)
    if os_ is None and unlabelled:
        os_ = unlabelled.pop(0)
    return od, os_


def parse_header(text: str) -> Header:
    header = Header()
    flat = normalise(text)
    both = _AGE_SEX.search(flat)
    if both:
        header.age, header.sex = int(both.group(1)), _sex(both.group(2))
    else:
        age = _AGE.search(flat)
        if age and 0 < int(age.group(1)) < 130:
            header.age = int(age.group(1))
        sex = _SEX.search(flat)
        if sex:
            header.sex = _sex(sex.group(1))
    for line in (text or "").splitlines():
        if not header.name:
            match = _NAME_LINE.search(line)
            if match:
                header.name = " ".join(match.group(1).split())[:200]
        if not header.patient_id:
            match = _ID_LINE.search(line)
            if match:
                header.patient_id = match.group(1)[:60]
    return header


def _sex(raw: str) -> str:
    return {"m": "M", "male": "M", "f": "F", "female": "F", "o": "O", "other": "O"}.get(raw.lower(), "")


def parse(text: str, *, hints: list[str] | None = None) -> ParsedReport:
    """Results, kind and header of a report's text. ``hints``: what the file name says ("dr", "glaucoma", "amd")."""
    flat = normalise(text)
    parsed = ParsedReport(header=parse_header(text))
    parts: list[str] = []

    match = _dr_family(flat)
    if match:
        negative = bool(match.group(1))
        subject = re.sub(r"\s+", " ", match.group(2))
        if "dr" in subject and "amd" in subject:
            parsed.dr_result = parsed.amd_result = DR_AMD_NEGATIVE if negative else DR_AMD_POSITIVE
            parsed.dr_referable = parsed.amd_referable = not negative
            parts.append("dr_amd")
        elif subject == "amd":
            parsed.amd_result = AMD_NEGATIVE if negative else AMD_POSITIVE
            parsed.amd_referable = not negative
            parts.append("amd")
        else:
            parsed.dr_result = DR_NEGATIVE if negative else DR_POSITIVE
            parsed.dr_referable = not negative
            parts.append("dr")

    glaucoma, context = _glaucoma(flat)
    if glaucoma:
        if glaucoma.group(1):
            parsed.glaucoma_result, parsed.glaucoma_referable = GLAUCOMA_NEGATIVE, False
        else:
            tail = context[glaucoma.end() : glaucoma.end() + 60]
            if re.search(r"immediate", tail):
                parsed.glaucoma_result = GLAUCOMA_IMMEDIATE
            elif re.search(r"referral\s*suggest|suggest", tail):
                parsed.glaucoma_result = GLAUCOMA_REFERRAL
            else:
                parsed.glaucoma_result = GLAUCOMA_POSITIVE
            parsed.glaucoma_referable = True
    parsed.vcdr_od, parsed.vcdr_os = _vcdr(flat)
    if glaucoma or parsed.vcdr_od is not None or parsed.vcdr_os is not None:
        parts.append("glaucoma")

    version = _VERSION.search(flat)
    if version:
        parsed.model_version = version.group(1)

    expected = set(hints or [])
    for kind, title in _TITLES.items():
        if title.search(flat):
            expected.add(kind)
    if ("dr" in expected or "amd" in expected) and not match:
        parsed.missing.append("DR/AMD result")
    if "glaucoma" in expected or "glaucoma" in parts:
        if not glaucoma:
            parsed.missing.append("glaucoma result")
        if parsed.vcdr_od is None:
            parsed.missing.append("VCDR of the right eye")
        if parsed.vcdr_os is None:
            parsed.missing.append("VCDR of the left eye")
    parsed.kind = "+".join(parts) if parts else "unknown"
    return parsed


def redact(text: str, *, identifiers: list[str]) -> str:
    """The report text with identifying header values and the patient's name and ID blanked, for people who may not
    see identifiers. Labels stay, so the shape of the report is still readable."""
    out = []
    for line in (text or "").splitlines():
        labels = list(_LABEL.finditer(line))
        if labels:
            line = line[: labels[0].start()] + "  ".join(f"{m.group(1).strip()}: [redacted]" for m in labels)
        out.append(line)
    redacted = "\n".join(out)
    words = {w for value in identifiers for w in re.split(r"[\s_]+", value or "") if len(w) >= 2}
    for word in sorted(words, key=len, reverse=True):
        redacted = re.sub(rf"(?i)(?<![0-9A-Za-z]){re.escape(word)}(?![0-9A-Za-z])", "[redacted]", redacted)
    return redacted
