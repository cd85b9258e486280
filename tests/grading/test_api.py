"""The grading API: next task, grade, an image's grades; bad input; blinding; query counts."""

import pytest

from accounts.models import Disease, Role
from grading import selectors, services
from grading.models import Grade, GradeScheme

SECRET = "PRIMARY-GRADER-REMARK-7731"


def next_task(client, user, disease="DR"):
    client.force_authenticate(user)
    return client.post("/api/grading/next", {"disease": disease}, format="json")


def grade(client, user, task_id, option, **extra):
    client.force_authenticate(user)
    return client.post(f"/api/grading/tasks/{task_id}/grade", {"option": option, **extra}, format="json")


def test_next_then_grade_then_204(api_client, queued_image, resident):
    image = queued_image()
    response = next_task(api_client, resident)
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["slot"] == "primary" and body["image_id"] == str(image.pk) and body["disease"] == "DR"
    assert body["image_url"] == f"http://testserver/images/{image.pk}/file"
    assert [(o["code"], o["label"]) for o in body["scheme"]["options"]][:2] == [
        ("0", "No apparent retinopathy"),
        ("1", "Mild NPDR"),
    ]
    assert body["other_grades"] == [] and body["companions"] == []
    created = grade(api_client, resident, body["task_id"], "2", remarks="hard exudates", seconds_spent=31)
    assert created.status_code == 201, created.content
    data = created.json()
    assert data["grade"]["option"] == "2" and data["grade"]["grader_type"] == "primary"
    assert data["grade"]["seconds_spent"] == 31 and data["grade"]["remarks"] == "hard exudates"
    assert data["consensus"] is None and data["arbitration_queued"] is False
    assert next_task(api_client, resident).status_code == 204


def test_agreement_returns_the_consensus(api_client, queued_image, resident, ophthalmologist):
    queued_image()
    grade(api_client, resident, next_task(api_client, resident).json()["task_id"], "2")
    response = grade(api_client, ophthalmologist, next_task(api_client, ophthalmologist).json()["task_id"], "2")
    assert response.status_code == 201
    consensus = response.json()["consensus"]
    assert consensus["method"] == "agreement" and consensus["option"] == "2" and len(consensus["grade_ids"]) == 2


@pytest.mark.parametrize(
    ("payload", "status", "detail"),
    [
        (
            {"disease": "XYZ"},
            400,
            "Unknown disease 'XYZ'. Use one of: DR, GLAUCOMA, AMD (code or id, see /api/reference/).",
        ),
        ({}, 400, None),
    ],
)
def test_next_bad_input(api_client, resident, payload, status, detail):
    api_client.force_authenticate(resident)
    response = api_client.post("/api/grading/next", payload, format="json")
    assert response.status_code == status
    if detail:
        assert response.json()["detail"] == detail
    else:
        assert "disease" in response.json()


def test_next_by_disease_id(api_client, queued_image, resident):
    queued_image()
    dr = Disease.objects.get(code="DR")
    assert next_task(api_client, resident, disease=str(dr.pk)).status_code == 200


def test_next_refused_to_non_graders_and_anonymous(api_client, make_user, lab_unit):
    uploader = make_user(Role.UPLOADER, lab_units=[lab_unit])
    response = next_task(api_client, uploader)
    assert response.status_code == 403
    assert response.json()["detail"].startswith("Your role does not allow grading")
    api_client.force_authenticate(None)
    assert api_client.post("/api/grading/next", {"disease": "DR"}, format="json").status_code in (401, 403)


def test_grade_bad_input_statuses(api_client, queued_image, resident, ophthalmologist, other_lab_unit, make_user):
    queued_image()
    task_id = next_task(api_client, resident).json()["task_id"]
    response = grade(api_client, resident, task_id, "7")
    assert response.status_code == 400
    assert response.json()["detail"] == "Unknown option '7' for ICDR diabetic retinopathy. Allowed: 0, 1, 2, 3, 4, U."
    response = grade(api_client, ophthalmologist, task_id, "1")
    assert response.status_code == 409
    assert response.json()["detail"] == "This task is leased to another grader. Ask for your next task instead."
    outsider = make_user(Role.RESIDENT, lab_units=[other_lab_unit])
    assert grade(api_client, outsider, task_id, "1").status_code == 404
    assert grade(api_client, resident, 424242, "1").status_code == 404
    response = grade(api_client, resident, task_id, "1", seconds_spent=-1)
    assert response.status_code == 400 and "seconds_spent" in response.json()
    assert not Grade.objects.exists()


def test_skip_and_renew(api_client, queued_image, resident):
    queued_image()
    task_id = next_task(api_client, resident).json()["task_id"]
    renewed = api_client.post(f"/api/grading/tasks/{task_id}/lease")
    assert renewed.status_code == 200 and renewed.json()["lease_expires_at"]
    assert api_client.post(f"/api/grading/tasks/{task_id}/skip").status_code == 200
    assert api_client.post(f"/api/grading/tasks/{task_id}/lease").status_code == 409
    assert next_task(api_client, resident).status_code == 204


# --- Blinding ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def primary_done(api_client, queued_image, resident):
    image = queued_image()
    task_id = next_task(api_client, resident).json()["task_id"]
    assert grade(api_client, resident, task_id, "3", remarks=SECRET).status_code == 201
    return image


def test_secondary_api_carries_no_primary_grade(api_client, primary_done, ophthalmologist):
    response = next_task(api_client, ophthalmologist)
    assert response.json()["slot"] == "secondary"
    assert response.json()["other_grades"] == []
    assert SECRET not in response.content.decode()
    again = api_client.get(f"/api/grading/tasks/{response.json()['task_id']}")
    assert again.status_code == 200 and again.json()["other_grades"] == []
    grades = api_client.get(f"/api/images/{primary_done.pk}/grades")
    assert grades.status_code == 200
    assert grades.json()["blinded"] is True and grades.json()["grades"] == [] and grades.json()["consensus"] == []
    assert SECRET not in grades.content.decode()


def test_secondary_page_and_image_panel_carry_no_primary_grade(client, api_client, primary_done, ophthalmologist):
    task_id = next_task(api_client, ophthalmologist).json()["task_id"]
    client.force_login(ophthalmologist)
    page = client.get(f"/grading/tasks/{task_id}").content.decode()
    assert 'data-testid="grade-form"' in page
    assert SECRET not in page and 'data-testid="other-grades"' not in page
    panel = client.get(f"/grading/images/{primary_done.pk}").content.decode()
    assert SECRET not in panel and "being graded blind" in panel
    from uploads.panels import panels_for

    rendered = [p for p in panels_for(primary_done, ophthalmologist) if p["title"] == "Grades"]
    assert rendered and rendered[0]["context"]["grading"]["schemes"] == []


def test_unblinded_scheme_shows_the_other_grade(api_client, primary_done, ophthalmologist):
    GradeScheme.objects.filter(code="icdr").update(blinded=False)
    body = next_task(api_client, ophthalmologist).json()
    assert [(g["grader_type"], g["option"], g["remarks"]) for g in body["other_grades"]] == [("primary", "3", SECRET)]


def test_pregraded_grades_shown_only_when_the_scheme_allows(api_client, queued_image, resident, ophthalmologist, icdr):
    image = queued_image(is_pregraded=True)
    dr = Disease.objects.get(code="DR")
    option = selectors.option_match(icdr, "4")
    services.grades_import_bulk(
        rows=[{"image_id": str(image.pk), "option_id": option.pk, "raw_value": "PDR"}],
        grader_type="resident",
        disease=dr,
        scheme=icdr,
        grader=resident,
    )
    body = next_task(api_client, ophthalmologist).json()
    assert body["slot"] == "secondary" and body["other_grades"] == []
    GradeScheme.objects.filter(code="icdr").update(graders_see_pregraded=True)
    body = api_client.get(f"/api/grading/tasks/{body['task_id']}").json()
    assert [(g["grader_type"], g["option"]) for g in body["other_grades"]] == [("resident", "4")]


def test_arbitrator_sees_both_grades(api_client, primary_done, ophthalmologist, arbitrator):
    grade(api_client, ophthalmologist, next_task(api_client, ophthalmologist).json()["task_id"], "1", remarks="no IRMA")
    body = next_task(api_client, arbitrator).json()
    assert body["slot"] == "arbitration"
    assert sorted((g["grader_type"], g["option"]) for g in body["other_grades"]) == [
        ("primary", "3"),
        ("secondary", "1"),
    ]
    result = grade(api_client, arbitrator, body["task_id"], "2")
    assert result.json()["consensus"]["method"] == "adjudication"


# --- An image's grades -------------------------------------------------------------------------------------------------


def test_image_grades_with_history_and_consensus(
    api_client, queued_image, resident, ophthalmologist, make_user, lab_unit
):
    image = queued_image()
    task_id = next_task(api_client, resident).json()["task_id"]
    first = grade(api_client, resident, task_id, "1").json()["grade"]
    revised = grade(api_client, resident, task_id, "2").json()
    assert revised["revised"] and revised["grade"]["supersedes"] == first["id"]
    grade(api_client, ophthalmologist, next_task(api_client, ophthalmologist).json()["task_id"], "2")
    manager = make_user(Role.DATA_MANAGER, lab_units=[lab_unit])
    api_client.force_authenticate(manager)
    body = api_client.get(f"/api/images/{image.pk}/grades").json()
    assert body["blinded"] is False
    assert [(g["grader_type"], g["option"], g["is_current"], g["grader"]) for g in body["grades"]] == [
        ("primary", "1", False, resident.username),
        ("primary", "2", True, resident.username),
        ("secondary", "2", True, ophthalmologist.username),
    ]
    (consensus,) = body["consensus"]
    assert consensus["method"] == "agreement" and consensus["option"] == "2" and consensus["is_current"]
    assert sorted(consensus["grade_ids"]) == sorted(g["id"] for g in body["grades"] if g["is_current"])


def test_image_grades_of_another_lab_unit_is_404(api_client, queued_image, other_lab_unit, resident):
    image = queued_image(lab_unit=other_lab_unit)
    api_client.force_authenticate(resident)
    assert api_client.get(f"/api/images/{image.pk}/grades").status_code == 404


# --- Query counts ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("images", [2, 9])
def test_api_query_counts_are_pinned(images, api_client, queued_image, resident, django_assert_num_queries):
    """The same number of queries per "next task", per grade and per image's grades, however long the queue."""
    for _ in range(images):
        queued_image()
    with django_assert_num_queries(NEXT):
        response = next_task(api_client, resident)
    assert response.status_code == 200
    with django_assert_num_queries(GRADE):
        response = grade(api_client, resident, response.json()["task_id"], "1")
    assert response.status_code == 201
    image_id = response.json()["grade"]["image_id"]
    with django_assert_num_queries(IMAGE_GRADES):
        response = api_client.get(f"/api/images/{image_id}/grades")
    assert response.status_code == 200


# next: roles, lab units, disease, user lock, held lease, candidate, lease, then the task and its options for the
# payload (blind: no other grades to read); grade: the service (14 less the cached roles) and the grade reloaded; an
# image's grades: the image, its grades, consensus and whether it is being graded blind.
NEXT, GRADE, IMAGE_GRADES = 11, 13, 4
