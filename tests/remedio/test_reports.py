"""Medios AI reports: parsing every result string and variant, OCR of rasterised pages, text layers, unreadable PDFs."""

from decimal import Decimal

import pytest

from remedio import reports
from tests.remedio.export import (
    RESULT_STRINGS,
    ReportSpec,
    corrupt_pdf,
    raster_page,
    raster_pdf,
    report_pdf,
    text_pdf,
)

needs_tesseract = pytest.mark.usefixtures("tesseract")

DR_FAMILY = {
    "dr-": ("dr", reports.DR_NEGATIVE, False),
    "dr+": ("dr", reports.DR_POSITIVE, True),
    "dr_amd-": ("dr_amd", reports.DR_AMD_NEGATIVE, False),
    "dr_amd+": ("dr_amd", reports.DR_AMD_POSITIVE, True),
    "amd-": ("amd", reports.AMD_NEGATIVE, False),
    "amd+": ("amd", reports.AMD_POSITIVE, True),
}
GLAUCOMA = {
    "glaucoma-": (reports.GLAUCOMA_NEGATIVE, False),
    "glaucoma+": (reports.GLAUCOMA_REFERRAL, True),
    "glaucoma++": (reports.GLAUCOMA_IMMEDIATE, True),
}


def check_dr_family(parsed, key):
    kind, text, referable = DR_FAMILY[key]
    if kind == "dr":
        assert (parsed.dr_result, parsed.dr_referable, parsed.amd_result) == (text, referable, "")
    elif kind == "amd":
        assert (parsed.amd_result, parsed.amd_referable, parsed.dr_result) == (text, referable, "")
    else:
        assert (parsed.dr_result, parsed.amd_result) == (text, text)
        assert parsed.dr_referable is referable and parsed.amd_referable is referable


@pytest.mark.parametrize("key", DR_FAMILY)
def test_parse_every_dr_family_result(key):
    parsed = reports.parse(f"Diabetic Retinopathy Report\nResult DR: {RESULT_STRINGS[key]}\n")
    check_dr_family(parsed, key)
    assert parsed.kind == DR_FAMILY[key][0]
    assert parsed.missing == []


@pytest.mark.parametrize("key", GLAUCOMA)
def test_parse_every_glaucoma_result(key):
    text = f"Glaucoma Screening Report\nSCREENING RESULT\nRight Eye VCDR - 0.45\nLeft Eye VCDR - 0.7\n{RESULT_STRINGS[key]}"
    parsed = reports.parse(text)
    assert (parsed.glaucoma_result, parsed.glaucoma_referable) == GLAUCOMA[key]
    assert (parsed.vcdr_od, parsed.vcdr_os) == (Decimal("0.45"), Decimal("0.70"))
    assert parsed.kind == "glaucoma" and parsed.missing == []


@pytest.mark.parametrize(
    ("text", "dr", "glaucoma"),
    [
        ("result dr: NO SIGNS OF DR DETECTED", reports.DR_NEGATIVE, ""),
        ("Result DR :  no   signs  of  dr  detected", reports.DR_NEGATIVE, ""),
        ("Result DR: N0 signs 0f DR detected", reports.DR_NEGATIVE, ""),  # OCR reads o as 0
        ("Result DR: Nosigns of DR detected", reports.DR_NEGATIVE, ""),  # and joins words
        ("Result DR: SIGNS OF DR DETECTED", reports.DR_POSITIVE, ""),
        ("Result: Signs of DR/AMD detected", reports.DR_AMD_POSITIVE, ""),
        ("No Referable Glacuoma - Review in 1 year", "", reports.GLAUCOMA_NEGATIVE),
        ("REFERABLE GLACUOMA - REFER IMMEDIATELY", "", reports.GLAUCOMA_IMMEDIATE),
        ("Referable  Glaucoma – Referral  suggested", "", reports.GLAUCOMA_REFERRAL),
        ("Referable Glaucoma", "", reports.GLAUCOMA_POSITIVE),
        ("No-Referable Glaucoma", "", reports.GLAUCOMA_NEGATIVE),
    ],
)
def test_case_spacing_and_spelling_variants(text, dr, glaucoma):
    parsed = reports.parse(text)
    assert parsed.dr_result == dr
    assert parsed.glaucoma_result == glaucoma


def test_the_result_line_wins_over_notes_that_mention_results():
    text = (
        "Notes: if signs of DR detected on a later visit, refer.\n"
        "Result DR: No signs of DR detected\n"
        "Glaucoma Screening Report\nReferable glaucoma is defined by VCDR >= 0.7\n"
        "SCREENING RESULT\nVCDR - 0.3\nVCDR - 0.35\nNo Referable Glaucoma - routine"
    )
    parsed = reports.parse(text)
    assert parsed.dr_result == reports.DR_NEGATIVE
    assert parsed.glaucoma_result == reports.GLAUCOMA_NEGATIVE
    assert (parsed.vcdr_od, parsed.vcdr_os) == (Decimal("0.30"), Decimal("0.35"))


@pytest.mark.parametrize(
    ("text", "od", "os_"),
    [
        ("VCDR - 0.45\nVCDR - 0.52", "0.45", "0.52"),
        ("Left eye VCDR: 0.6  Right eye VCDR: 0.4", "0.40", "0.60"),
        ("OS VCDR=.5 OD VCDR=.3", "0.30", "0.50"),
        ("RightEye VCDR-0,45 LeftEye VCDR-O.52", "0.45", "0.52"),
        ("VCDR - 0.45", "0.45", None),
        ("VCDR - 1.0\nVCDR - 1.7", "1.00", None),  # 1.7 is no ratio
    ],
)
def test_vcdr_per_eye(text, od, os_):
    parsed = reports.parse(text)
    assert parsed.vcdr_od == (Decimal(od) if od else None)
    assert parsed.vcdr_os == (Decimal(os_) if os_ else None)


def test_missing_parts_are_listed():
    parsed = reports.parse("Glaucoma Screening Report\nSCREENING RESULT\nVCDR - 0.4\n", hints=["dr"])
    assert parsed.missing == ["DR/AMD result", "glaucoma result", "VCDR of the left eye"]
    assert not parsed.has_result


def test_header_fields_are_optional():
    header = reports.parse_header("Name: Asha Verma   Age: 54 Years  Sex: Female\nPatient ID: MRN-42\n")
    assert (header.name, header.patient_id, header.age, header.sex) == ("Asha Verma", "MRN-42", 54, "F")
    assert reports.parse_header("Age/Sex: 61 Y / M").age == 61
    assert reports.parse_header("Age/Sex: 61 Y / M").sex == "M"
    assert reports.parse_header("Result DR: No signs of DR detected") == reports.Header()


def test_model_version():
    assert reports.parse("Medios AI v2.3.1\nResult DR: Signs of DR detected").model_version == "2.3.1"
    assert reports.parse("Medios Al Version 1.4\nResult DR: Signs of DR detected").model_version == "1.4"


def test_redaction_blanks_identifiers_but_keeps_results():
    text = "Name: Asha Verma\nPatient ID: MRN0042\nAge: 54  Sex: F\nResult DR: Signs of DR detected\nAsha was seen"
    redacted = reports.redact(text, identifiers=["Asha Verma", "MRN0042"])
    assert "Asha" not in redacted and "Verma" not in redacted and "MRN0042" not in redacted and "54" not in redacted
    assert "Result DR: Signs of DR detected" in redacted
    assert "Name: [redacted]" in redacted


# --- Reading PDFs --------------------------------------------------------------------------------------------------


def read(tmp_path, data: bytes) -> reports.ReportText:
    path = tmp_path / "report.pdf"
    path.write_bytes(data)
    return reports.read_pdf(path)


@needs_tesseract
@pytest.mark.parametrize("key", DR_FAMILY)
def test_ocr_of_rasterised_reports_every_dr_family_result(tmp_path, key):
    text = read(tmp_path, report_pdf(ReportSpec(dr=key, glaucoma=None)))
    assert text.method == "ocr"
    parsed = reports.parse(text.text)
    check_dr_family(parsed, key)


@needs_tesseract
@pytest.mark.parametrize("key", GLAUCOMA)
def test_ocr_of_rasterised_reports_every_glaucoma_result(tmp_path, key):
    spec = ReportSpec(dr=None, glaucoma=key, vcdr=("0.38", "0.81"))
    parsed = reports.parse(read(tmp_path, report_pdf(spec)).text)
    assert (parsed.glaucoma_result, parsed.glaucoma_referable) == GLAUCOMA[key]
    assert (parsed.vcdr_od, parsed.vcdr_os) == (Decimal("0.38"), Decimal("0.81"))


@needs_tesseract
@pytest.mark.parametrize(
    ("dr_text", "glaucoma_text", "dr", "glaucoma"),
    [
        ("NO SIGNS OF DR DETECTED", "NO REFERABLE GLACUOMA - REVIEW IN 1 YEAR", reports.DR_NEGATIVE, reports.GLAUCOMA_NEGATIVE),
        ("signs  of  DR  detected", "Referable Glacuoma - Refer immediately", reports.DR_POSITIVE, reports.GLAUCOMA_IMMEDIATE),
    ],
)  # fmt: skip
def test_ocr_of_variants_and_misspelling(tmp_path, dr_text, glaucoma_text, dr, glaucoma):
    spec = ReportSpec(dr="dr-", glaucoma="glaucoma-", dr_text=dr_text, glaucoma_text=glaucoma_text)
    parsed = reports.parse(read(tmp_path, report_pdf(spec)).text)
    assert (parsed.dr_result, parsed.glaucoma_result) == (dr, glaucoma)
    assert parsed.kind == "dr+glaucoma"


@needs_tesseract
def test_two_page_rasterised_report_reads_header(tmp_path):
    text = read(tmp_path, report_pdf(ReportSpec(name="Asha Verma", age=61, sex="Female")))
    parsed = reports.parse(text.text)
    assert len(text.pages) == 2
    assert parsed.header.age == 61 and parsed.header.sex == "F"
    assert parsed.model_version == "2.3.1"


def test_text_layer_is_read_without_ocr(tmp_path, monkeypatch):
    monkeypatch.setattr(reports, "ocr_page", lambda page: pytest.fail("OCR must not run on a text layer"))
    text = read(tmp_path, report_pdf(ReportSpec(dr="dr_amd+", glaucoma="glaucoma+"), rasterised=False))
    assert text.method == "text"
    parsed = reports.parse(text.text)
    assert parsed.dr_result == reports.DR_AMD_POSITIVE
    assert parsed.glaucoma_result == reports.GLAUCOMA_REFERRAL
    assert parsed.kind == "dr_amd+glaucoma"


@needs_tesseract
def test_mixed_report_uses_the_layer_where_present(tmp_path):
    spec = ReportSpec(dr="dr+", glaucoma="glaucoma++")
    dr_page, glaucoma_page = spec.pages()
    text = read(tmp_path, text_pdf([dr_page, raster_page(glaucoma_page)]))
    assert text.method == "mixed"
    parsed = reports.parse(text.text)
    assert (parsed.dr_result, parsed.glaucoma_result) == (reports.DR_POSITIVE, reports.GLAUCOMA_IMMEDIATE)


def test_encrypted_report_is_unreadable_with_reason(tmp_path):
    with pytest.raises(reports.ReportUnreadable) as caught:
        read(tmp_path, report_pdf(ReportSpec(), password="secret"))
    assert caught.value.reason == reports.MSG_ENCRYPTED


@pytest.mark.parametrize("data", [corrupt_pdf(), text_pdf([["Result DR: x"]])[:300], b"%PDF-1.4\n%%EOF\n"])
def test_corrupt_or_truncated_report_is_unreadable_with_reason(tmp_path, data):
    with pytest.raises(reports.ReportUnreadable) as caught:
        read(tmp_path, data)
    assert caught.value.reason in (reports.MSG_CORRUPT, reports.MSG_NO_PAGES)


@needs_tesseract
def test_blank_rasterised_report_has_no_text(tmp_path):
    with pytest.raises(reports.ReportUnreadable) as caught:
        read(tmp_path, raster_pdf([[]]))
    assert caught.value.reason == reports.MSG_NO_TEXT


def test_missing_tesseract_flags_the_report(tmp_path, monkeypatch):
    import pytesseract

    def missing(*args, **kwargs):
        raise pytesseract.TesseractNotFoundError()

    monkeypatch.setattr(pytesseract, "image_to_string", missing)
    with pytest.raises(reports.ReportUnreadable) as caught:
        read(tmp_path, report_pdf(ReportSpec()))
    assert caught.value.reason == reports.MSG_NO_OCR
