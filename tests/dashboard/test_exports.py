import csv
import io

import openpyxl
import pytest

from accounts.models import Role
from uploads import exports, hooks
from uploads.models import AuditEvent

pytestmark = pytest.mark.django_db

HOSTILE = [
    '=HYPERLINK("http://evil.example","x").jpg',
    "+1+1.jpg",
    "-2+3.jpg",
    "@SUM(A1).jpg",
    "\tcmd.jpg",
    " =1+2.jpg",
]


def read_csv(response) -> list[dict]:
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def read_xlsx(response) -> list[dict]:
    data = b"".join(response.streaming_content)
    sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).active
    rows = list(sheet.iter_rows(values_only=True))
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


@pytest.mark.parametrize("name", ["safe.jpg", *HOSTILE])
def test_neutralise(name):
    out = exports.neutralise(name)
    if name == "safe.jpg":
        assert out == name
    else:
        assert out == "'" + name


def test_csv_export_of_the_filtered_list(client, make_image, uploader, lab_unit, other_lab_unit, make_user):
    a = make_image(
        lab_unit=lab_unit, uploaded_by=uploader, name="a.jpg", client_ip="203.0.113.9", user_agent="SecretBrowser/1.0"
    )
    make_image(lab_unit=lab_unit, uploaded_by=uploader, name="b.png", mydriatic=True)
    make_image(lab_unit=other_lab_unit, uploaded_by=make_user(Role.UPLOADER, lab_units=[other_lab_unit]), name="c.jpg")
    client.force_login(uploader)
    response = client.get("/images/export?format=csv&mydriatic=no")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="images-')
    rows = read_csv(response)
    assert [r["file_name"] for r in rows] == ["a.jpg"]
    row = rows[0]
    assert row["image_id"] == str(a.pk) and row["lab_unit_code"] == lab_unit.code and row["disease"] == "DR"
    assert row["grading_status"] == "not_queued" and row["pre_graded"] == "no" and row["size_bytes"] == str(a.size)
    assert list(rows[0]) == list(exports.BASE_COLUMNS)
    # No identifiers beyond the image itself: neither the uploader's address nor their browser.
    flat = ",".join(rows[0].values())
    assert "203.0.113.9" not in flat and "SecretBrowser" not in flat
    event = AuditEvent.objects.get(action="images.exported")
    assert (
        event.actor == uploader
        and event.details["format"] == "csv"
        and event.details["filters"] == [["mydriatic", "no"]]
    )


def test_export_of_an_image_whose_name_starts_with_equals_is_neutralised(client, make_image, uploader, lab_unit):
    for name in HOSTILE:
        make_image(lab_unit=lab_unit, uploaded_by=uploader, name=name, dataset_label="=cmd|' /C calc'!A0")
    client.force_login(uploader)
    rows = read_csv(client.get("/images/export?format=csv"))
    assert sorted(r["file_name"] for r in rows) == sorted("'" + n for n in HOSTILE)
    assert {r["dataset_label"] for r in rows} == {"'=cmd|' /C calc'!A0"}
    xrows = read_xlsx(client.get("/images/export?format=xlsx"))
    assert sorted(r["file_name"] for r in xrows) == sorted("'" + n for n in HOSTILE)
    # Written as text cells, never as formulas.
    data = b"".join(client.get("/images/export?format=xlsx").streaming_content)
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)


def test_xlsx_export_has_numbers_as_numbers(client, make_image, uploader, lab_unit):
    image = make_image(lab_unit=lab_unit, uploaded_by=uploader, width=300, height=200)
    client.force_login(uploader)
    response = client.get("/images/export?format=xlsx")
    assert response["Content-Type"] == exports.FORMATS["xlsx"]
    rows = read_xlsx(response)
    assert rows[0]["width"] == 300 and rows[0]["height"] == 200 and rows[0]["image_id"] == str(image.pk)


def test_export_of_a_selection_and_the_50_limit(client, make_image, uploader, lab_unit):
    images = [make_image(lab_unit=lab_unit, uploaded_by=uploader, files=False) for _ in range(51)]
    client.force_login(uploader)
    ids = "&".join(f"ids={i.pk}" for i in images[:3])
    rows = read_csv(client.get(f"/images/export?format=csv&{ids}"))
    assert {r["image_id"] for r in rows} == {str(i.pk) for i in images[:3]}
    response = client.get("/images/export?format=csv&" + "&".join(f"ids={i.pk}" for i in images))
    assert response.status_code == 400 and "at most 50 images" in response.content.decode()


def test_export_is_read_in_batches_with_constant_queries(client, make_image, uploader, lab_unit, monkeypatch):
    monkeypatch.setattr(exports, "EXPORT_BATCH", 4)
    for _ in range(11):
        make_image(lab_unit=lab_unit, uploaded_by=uploader, files=False)
    client.force_login(uploader)
    response = client.get("/images/export?format=csv")
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        rows = read_csv(response)
    assert len(rows) == 11
    # The user's lab units once, then one query per batch of 4 rows (4 + 4 + 3): never a query per row.
    assert len(ctx.captured_queries) == 1 + 3


def test_links_and_registered_grade_columns(api_client, make_image, uploader, lab_unit):
    graded = make_image(lab_unit=lab_unit, uploaded_by=uploader, name="g.jpg")
    other = make_image(lab_unit=lab_unit, uploaded_by=uploader, name="h.jpg")
    calls = []

    def fetch(ids, user):
        calls.append(list(ids))
        return {graded.pk: {"consensus_grade": "=2", "ai_grades": "RetinaAI 1.0: 2 (0.91)"}}

    hooks.register_export_columns("grades", "consensus and AI grades", ["consensus_grade", "ai_grades"], fetch)
    api_client.force_authenticate(uploader)
    response = api_client.get("/api/images/export?format=csv&include=grades,links")
    assert response.status_code == 200
    rows = {r["file_name"]: r for r in read_csv(response)}
    assert rows["g.jpg"]["consensus_grade"] == "'=2" and rows["g.jpg"]["ai_grades"] == "RetinaAI 1.0: 2 (0.91)"
    assert rows["h.jpg"]["consensus_grade"] == ""
    assert rows["g.jpg"]["download_url"] == f"http://testserver/api/images/{graded.pk}/file"
    assert len(calls) == 1 and set(calls[0]) == {graded.pk, other.pk}
    # The download link works with the same credentials.
    file_response = api_client.get(rows["g.jpg"]["download_url"])
    assert file_response.status_code == 200 and file_response["Content-Type"] == "image/jpeg"


def test_unknown_include_says_what_is_available(api_client, uploader):
    api_client.force_authenticate(uploader)
    response = api_client.get("/api/images/export?format=csv&include=grades")
    assert response.status_code == 400
    assert response.json()["detail"] == "Unknown include value 'grades'. Available in this installation: links."
    response = api_client.get("/api/images/export?format=pdf")
    assert (
        response.status_code == 400 and response.json()["detail"] == "Unknown export format 'pdf'. Allowed: csv, xlsx."
    )
