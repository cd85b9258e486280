"""The grade import pages without a browser: template workbooks, the form and mapping step through the views, the
failed-rows CSV, and constant query counts of the list page and the import API."""

import io

import openpyxl
import pytest

from accounts.models import Role
from grading.models import Grade
from pregraded import selectors, spreadsheets
from pregraded.models import GradeImport, ValueMapping
from tests.pregraded.conftest import csv_bytes, upload


@pytest.fixture
def manager_client(client, data_manager):
    client.force_login(data_manager)
    return client


@pytest.mark.parametrize(
    "grader_type, columns",
    [
        ("resident", ["image_name", "resident_grade", "resident_remarks"]),
        ("resident2", ["image_name", "resident2_grade", "resident2_remarks"]),
        ("ai", ["image_name", "ai_grade", "ai_remarks", "ai_probability"]),
    ],
)
def test_template_workbook_per_grader_type(manager_client, api_client, data_manager, grader_type, columns):
    response = manager_client.get(f"/pregraded/grades/template/{grader_type}.xlsx")
    assert response.status_code == 200
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response["Content-Disposition"] == f'attachment; filename="{grader_type}-grades-template.xlsx"'
    book = openpyxl.load_workbook(io.BytesIO(response.content))
    assert book.sheetnames == ["Grades", "Allowed values", "Instructions"]
    assert [c.value for c in book["Grades"][1]] == columns
    allowed = {(r[0], r[2]) for r in book["Allowed values"].iter_rows(min_row=2, values_only=True)}
    assert {("DR", "0"), ("DR", "4")} <= allowed
    # A filled-in template is read back with the columns it names.
    sheet = book["Grades"]
    sheet.append(["a.jpg", "Mild", "fine", 0.5][: len(columns)])
    out = io.BytesIO()
    book.save(out)
    out.seek(0)
    parsed = spreadsheets.read_grade_sheet(out, grader_type=grader_type, max_rows=10)
    assert [(r.image_name, r.value, r.remarks) for r in parsed.rows] == [("a.jpg", "Mild", "fine")]
    api_client.force_authenticate(data_manager)
    via_api = api_client.get(f"/api/pregraded/grades/template?grader_type={grader_type}")
    assert via_api.status_code == 200 and via_api.content[:2] == b"PK"


def test_unknown_template_type(manager_client, api_client, data_manager):
    assert manager_client.get("/pregraded/grades/template/nurse.xlsx").status_code == 404
    api_client.force_authenticate(data_manager)
    response = api_client.get("/api/pregraded/grades/template?grader_type=nurse")
    assert (
        response.status_code == 400
        and response.json()["detail"] == "Choose the grader type: resident, resident2 or ai."
    )


def _form(lab_unit, icdr, **extra):
    return {
        "grader_type": "ai",
        "hospital": str(lab_unit.hospital_id),
        "lab_unit": str(lab_unit.pk),
        "disease": str(icdr.disease_id),
        "ai_model_name": "RetNet",
        "ai_model_version": "1",
        **extra,
    }


def test_form_mapping_page_and_summary_through_the_views(manager_client, lab_unit, icdr, pregraded_image, run_jobs):
    pregraded_image("a.jpg")
    pregraded_image("b.jpg")
    data = csv_bytes([("image_name", "ai_grade"), ("a.jpg", "Referable"), ("b.jpg", "Mild"), ("=cmd.jpg", "Mild")])
    response = manager_client.post("/pregraded/grades", {**_form(lab_unit, icdr), "file": upload(data, "g.csv")})
    imp = GradeImport.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/pregraded/grades/{imp.pk}"
    page = manager_client.get(response["Location"]).content.decode()
    assert '<code class="value">Referable</code>' in page and "Recognised by the scheme" in page
    assert 'id="mapping-form"' in page
    rows = {r.value: r for r in selectors.value_rows(imp)}
    incomplete = manager_client.post(
        f"/pregraded/grades/{imp.pk}/mapping", {f"map-{rows['Mild'].index}": "option:1"}, follow=True
    )
    assert "Map every value before importing; still unmapped: &#x27;Referable&#x27; (1 row)." in (
        incomplete.content.decode()
    )
    assert GradeImport.objects.get().status == "needs_mapping"
    with run_jobs():
        manager_client.post(
            f"/pregraded/grades/{imp.pk}/mapping",
            {f"map-{rows['Referable'].index}": "option:3", f"map-{rows['Mild'].index}": "option:1"},
        )
    imp.refresh_from_db()
    assert imp.status == "done", imp.error
    assert Grade.objects.get(image__original_name="a.jpg").option.code == "3"
    assert ValueMapping.objects.get(value="Referable").option.code == "3"
    summary = manager_client.get(f"/pregraded/grades/{imp.pk}").content.decode()
    assert 'id="imported-count">2<' in summary and 'data-code="image_not_found"' in summary
    failed = manager_client.get(f"/pregraded/grades/{imp.pk}/failed-rows.csv")
    assert failed["Content-Type"].startswith("text/csv")
    lines = failed.content.decode().splitlines()
    assert lines[0] == "row,image_name,reason" and lines[1].startswith("4,'=cmd.jpg,Image not found")


def test_a_refused_file_is_shown_on_the_form_with_its_message(manager_client, lab_unit, icdr):
    response = manager_client.post(
        "/pregraded/grades",
        {**_form(lab_unit, icdr), "file": upload(csv_bytes([("name", "ai_grade"), ("a.jpg", "1")]), "g.csv")},
    )
    assert response.status_code == 400
    body = response.content.decode()
    assert "No header row with an image_name column was found" in body and "&#x27;name&#x27;" in body
    assert not GradeImport.objects.exists()


def _queries(client, url) -> int:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    assert client.get(url).status_code == 200  # warm per-process caches (menu, reference data)
    with CaptureQueriesContext(connection) as ctx:
        assert client.get(url).status_code == 200
    return len(ctx.captured_queries)


def test_list_page_and_import_api_queries_do_not_grow(
    manager_client, api_client, data_manager, lab_unit, icdr, django_assert_num_queries, make_user
):
    ophthalmologist = make_user(Role.OPHTHALMOLOGIST, lab_units=[lab_unit])

    def add_import(values: int) -> GradeImport:
        data = csv_bytes([("image_name", "resident2_grade")] + [(f"{i}.jpg", f"odd value {i}") for i in range(values)])
        form = _form(lab_unit, icdr, grader_type="resident2", grader=str(ophthalmologist.pk))
        manager_client.post("/pregraded/grades", {**form, "file": upload(data, f"{values}.csv")})
        return GradeImport.objects.get(original_name=f"{values}.csv")

    small = add_import(1)
    page_queries = _queries(manager_client, "/pregraded/grades")
    api_client.force_authenticate(data_manager)
    api_queries = _queries(api_client, f"/api/pregraded/grades/{small.pk}")
    page_detail_queries = _queries(manager_client, f"/pregraded/grades/{small.pk}")
    api_list_queries = _queries(api_client, "/api/pregraded/grades")
    large = add_import(30)
    for values in range(2, 6):
        add_import(values)
    with django_assert_num_queries(page_queries):
        manager_client.get("/pregraded/grades")
    with django_assert_num_queries(api_queries):
        api_client.get(f"/api/pregraded/grades/{large.pk}")
    with django_assert_num_queries(page_detail_queries):
        manager_client.get(f"/pregraded/grades/{large.pk}")
    with django_assert_num_queries(api_list_queries):
        assert len(api_client.get("/api/pregraded/grades").json()) == 6
