"""Quality pages, exports (CSV, XLSX) and the one-page PDF report: what they show, who may open them, bad
parameters, formula injection, no identifiers, and a constant number of queries."""

import csv
import io
import re
import zipfile

import openpyxl
import pdfplumber
import pytest

from accounts.models import Role
from tests.quality.conftest import month

EVIL_MODEL = '=HYPERLINK("http://example.invalid/x","open")'
EVIL_USER = "@reader-a+1"  # a valid Django username a spreadsheet would run as a formula


def _fill(seed, n, start=0, *, model_name="Screener", reader="reader-a"):
    model = seed.ai_model(model_name, "2.1")
    a, b = seed.user(reader), seed.user("reader-b", Role.OPHTHALMOLOGIST)
    images = []
    for i in range(start, start + n):
        image = seed.image(dataset_label="trial", area="left" if i % 2 else "right")
        images.append(image)
        ref = str(i % 5)
        seed.grade(image, "primary", ref if i % 7 else "1", grader=a, when=month(2026, 1 + i % 4))
        seed.grade(image, "secondary", str(max(0, i % 5 - (i % 3 == 0))), grader=b, when=month(2026, 1 + i % 4))
        seed.grade(image, "ai", ref if i % 6 else "0", ai_model=model, probability=round((i % 10) / 10 + 0.05, 2))
        seed.consensus(image, ref)
    return images


@pytest.fixture
def filled(seed):
    return _fill(seed, 30)


def test_agreement_page_shows_figures_heatmap_and_time_series(client, manager, filled):
    client.force_login(manager)
    response = client.get("/quality/agreement", {"disease": "DR"})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="pairs"' in page and "Primary" in page and "Secondary" in page
    heatmap = re.search(r'data-testid="heatmap">(.*?)</div>', page, re.S).group(1)
    assert "<svg" in heatmap and 'data-chart="heatmap"' in heatmap
    assert 'data-chart="timeline"' in page or "<svg" in page.split('data-testid="timeline"')[1][:400]
    assert "Fleiss" in page
    # Each export and the API are linked with the same selection.
    for testid in ("export-csv", "export-xlsx", "export-pdf"):
        assert f'data-testid="{testid}"' in page


def test_performance_page_shows_roc_operating_point_and_threshold_explorer(client, manager, filled):
    client.force_login(manager)
    response = client.get("/quality/performance", {"rater": "ai:Screener:2.1"})
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="raters"' in page and 'data-rater="ai:Screener:2.1"' in page
    roc = page.split('data-testid="roc"')[1]
    assert 'data-chart="roc"' in roc[:600]
    assert "roc-operating-point" in page and "roc-threshold-marker" in page
    assert 'id="threshold-slider"' in page and 'id="threshold-data"' in page
    assert 'data-testid="two-by-two"' in page
    assert 'src="/static/app/quality.js"' in page or "quality.js" in page
    # Unit of analysis and ungradable handling are stated.
    eye = client.get("/quality/performance", {"rater": "reader-a", "unit": "eye", "ungradable": "referable"})
    text = eye.content.decode()
    assert eye.status_code == 200 and "unit: eye" in text and "counted as referable" in text


def test_monitoring_page_flags_below_thresholds(client, manager, seed, settings):
    settings.QUALITY_MONITOR_MIN_CASES = 5
    settings.QUALITY_MIN_SPECIFICITY = 0.99
    sloppy = seed.user("sloppy")
    for i in range(20):
        image = seed.image()
        seed.consensus(image, "0" if i % 2 else "3")
        seed.grade(image, "primary", "3" if i % 4 == 1 else ("0" if i % 2 else "3"), grader=sloppy)
    client.force_login(manager)
    page = client.get("/quality/monitoring").content.decode()
    assert '<tr data-grader="sloppy" class="table-warning">' in page
    assert "1 grader flagged" in page and "0.99" in page
    settings.QUALITY_MIN_SPECIFICITY = 0.4
    page = client.get("/quality/monitoring").content.decode()
    assert "No grader flagged" in page


def test_who_may_open_the_pages(client, make_user, lab_unit, filled):
    urls = ["/quality/", "/quality/agreement", "/quality/performance", "/quality/monitoring"]
    urls += ["/quality/agreement/export.csv", "/quality/performance/export.xlsx", "/quality/report.pdf"]
    for role, allowed in ((Role.OPHTHALMOLOGIST, True), (Role.ADMIN, True), (Role.RESIDENT, False)):
        client.force_login(make_user(role, lab_units=[lab_unit]))
        for url in urls:
            status = client.get(url).status_code
            assert (status in (200, 302)) if allowed else status == 403, (role, url, status)
        home = client.get("/").content.decode()
        assert ('href="/quality/agreement"' in home) is allowed
    client.logout()
    assert client.get("/quality/agreement").status_code == 302


def test_bad_parameters_render_the_form_with_what_is_allowed(client, manager, filled):
    client.force_login(manager)
    response = client.get("/quality/performance", {"unit": "retina", "threshold": "9"})
    assert response.status_code == 400
    page = response.content.decode()
    assert 'data-testid="selection-errors"' in page
    assert "image, eye, patient" in page and "0, 1, 2, 3, 4" in page
    assert client.get("/quality/agreement/export.csv", {"date_from": "yesterday"}).status_code == 400
    assert client.get("/quality/agreement/export.docx").status_code == 404


def test_csv_and_xlsx_exports_neutralise_formulas_and_hold_no_identifiers(client, manager, seed):
    images = _fill(seed, 12, model_name=EVIL_MODEL, reader=EVIL_USER)
    client.force_login(manager)
    identifiers = set()
    for image in images:
        identifiers |= {str(image.pk), image.pk.hex, image.original_name, image.md5, image.file.name}

    response = client.get("/quality/performance/export.csv", {"rater": EVIL_USER})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert re.fullmatch(
        r'attachment; filename="quality-performance-DR-icdr-\d{8}\.csv"', response["Content-Disposition"]
    )
    body = response.content.decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body)))
    tokens = {row["rater"] for row in rows}
    assert {f"'{EVIL_USER}", f"ai:{EVIL_MODEL}:2.1", "primary"} <= tokens
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values() if cell)
    assert not any(ident in body for ident in identifiers)
    monitoring = client.get("/quality/monitoring/export.csv").content.decode("utf-8-sig")
    assert f"\n'{EVIL_USER}," in monitoring.replace("\r\n", "\n")

    for kind in ("agreement", "performance", "monitoring"):
        response = client.get(f"/quality/{kind}/export.xlsx", {"rater": EVIL_USER} if kind != "monitoring" else {})
        assert response.status_code == 200, response.content[:500]
        book = openpyxl.load_workbook(io.BytesIO(response.content))
        cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row if c.value is not None]
        assert not any(c.data_type == "f" for c in cells)  # no formula anywhere
        texts = [str(c.value) for c in cells]
        assert not any(ident in text for ident in identifiers for text in texts)
        with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
            raw = b"".join(archive.read(name) for name in archive.namelist())
        assert b"<f>" not in raw
        if kind == "performance":
            assert f"'{EVIL_USER}" in texts and f"ai:{EVIL_MODEL}:2.1" in texts
            assert {"ROC", "Selection"} <= set(book.sheetnames)
        if kind == "agreement":
            assert {"Summary", "Over time", "Selection"} <= set(book.sheetnames)


def test_pdf_report_is_one_page(client, manager, filled):
    client.force_login(manager)
    response = client.get("/quality/report.pdf", {"dataset": "trial", "unit": "patient"})
    assert response.status_code == 200 and response["Content-Type"] == "application/pdf"
    assert re.fullmatch(r'attachment; filename="quality-report-DR-icdr-\d{8}\.pdf"', response["Content-Disposition"])
    with pdfplumber.open(io.BytesIO(response.content)) as pdf:
        assert len(pdf.pages) == 1
        page = pdf.pages[0]
        assert (round(page.width), round(page.height)) == (595, 842)  # A4
        assert page.images  # the report is drawn as one A4 image with its charts


@pytest.mark.parametrize(
    ("url", "params", "miss", "hit"),
    [
        ("/quality/agreement", {}, 17, 16),
        ("/quality/performance", {}, 20, 16),
        ("/quality/performance", {"rater": "reader-a", "unit": "eye"}, 21, 17),
        ("/quality/monitoring", {}, 20, 16),
        ("/quality/agreement/export.csv", {}, 10, 9),
        ("/quality/performance/export.xlsx", {}, 13, 9),
        ("/quality/report.pdf", {}, 19, 14),
    ],
)
def test_pages_keep_a_constant_number_of_queries(
    client, manager, seed, django_assert_num_queries, url, params, miss, hit
):
    from django.core.cache import cache

    client.force_login(manager)
    for start, n in ((0, 4), (4, 20)):
        _fill(seed, n, start)
        cache.clear()
        with django_assert_num_queries(miss):
            assert client.get(url, params).status_code == 200
        with django_assert_num_queries(hit):
            assert client.get(url, params).status_code == 200
