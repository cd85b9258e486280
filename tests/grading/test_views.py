"""Grading pages: queue, grading page (Save & next, Skip, errors), image grades, discrepancies, progress, admin."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts.models import Disease, Role
from grading import selectors, services
from grading.models import AIModel, Grade, GradeOption, GradeScheme, GradingTask
from tests.factories import LabUnitFactory


def grade_pair(resident, ophthalmologist, first, second, disease="DR"):
    task = services.task_next(user=resident, disease=disease)
    services.grade_submit(user=resident, task_id=task.pk, option=first)
    task = services.task_next(user=ophthalmologist, disease=disease)
    return services.grade_submit(user=ophthalmologist, task_id=task.pk, option=second)


def test_menu_and_start_page_entries(client, resident, make_user, lab_unit):
    client.force_login(resident)
    page = client.get("/").content.decode()
    assert 'href="/grading/"' in page and "Start grading" in page and 'href="/grading/progress"' in page
    assert 'href="/grading/discrepancies"' not in page  # residents do not see quality pages
    manager = make_user(Role.DATA_MANAGER, lab_units=[lab_unit])
    client.force_login(manager)
    page = client.get("/").content.decode()
    assert 'href="/grading/discrepancies"' in page and 'href="/grading/"' not in page


def test_queue_page(client, queued_image, resident):
    queued_image()
    queued_image()
    client.force_login(resident)
    page = client.get("/grading/").content.decode()
    assert 'data-queue="DR"' in page
    assert '<p class="display-6 mb-0" data-testid="available">2</p>' in page


def test_queue_page_counts_what_each_grader_can_take(
    client, queued_image, resident, ophthalmologist, make_user, lab_unit
):
    queued_image()
    queued_image()  # 4 open slots
    task = services.task_next(user=ophthalmologist, disease="DR")
    services.grade_submit(user=ophthalmologist, task_id=task.pk, option="1")

    def available(user):
        client.force_login(user)
        page = client.get("/grading/").content.decode()
        return int(page.split('data-testid="available">')[1].split("<")[0])

    # Not the secondary of the image they graded: the other image's two slots.
    assert available(ophthalmologist) == 2
    assert available(resident) == 1  # primaries only
    colleague = make_user(Role.OPHTHALMOLOGIST, lab_units=[lab_unit])
    assert available(colleague) == 3
    held = services.task_next(user=colleague, disease="DR")  # the half-graded image's secondary comes first
    assert (held.image_id, held.slot) == (task.image_id, "secondary")
    assert available(colleague) == 2 and "Resume" in client.get("/grading/").content.decode()


@pytest.mark.parametrize("url", ["/grading/", "/grading/discrepancies"])
def test_pages_refused_by_role(client, make_user, lab_unit, url):
    client.force_login(make_user(Role.UPLOADER, lab_units=[lab_unit]))
    assert client.get(url).status_code == 403


def test_save_and_next_moves_to_the_next_task(client, queued_image, resident):
    queued_image()
    queued_image()
    client.force_login(resident)
    response = client.post("/grading/next/DR")
    first = int(response["Location"].rstrip("/").rsplit("/", 1)[1])
    page = client.get(response["Location"]).content.decode()
    assert 'data-src="/images/' in page and 'class="fundus-viewer"' in page and "app/viewer.js" in page
    assert 'data-key="U"' in page and "Save &amp; next" in page
    response = client.post(f"/grading/tasks/{first}", {"option": "2", "remarks": "cotton wool", "seconds_spent": "12"})
    assert response.status_code == 302
    second = int(response["Location"].rstrip("/").rsplit("/", 1)[1])
    assert second != first
    grade = Grade.objects.get(task_id=first)
    assert (grade.option.code, grade.remarks, grade.seconds_spent) == ("2", "cotton wool", 12)
    # Skip hands it back and moves on; with nothing left, back to the queue page with a message.
    response = client.post(f"/grading/tasks/{second}", {"action": "skip"}, follow=True)
    assert response.redirect_chain[-1][0] == "/grading/"
    assert "Nothing left in the DR queue for you" in response.content.decode()
    assert GradingTask.objects.get(pk=second).status == "pending"


def test_grading_page_errors_are_shown_and_nothing_written(client, queued_image, resident):
    queued_image()
    client.force_login(resident)
    task = services.task_next(user=resident, disease="DR")
    response = client.post(f"/grading/tasks/{task.pk}", {"option": "9"})
    assert response.status_code == 400
    assert (
        "Unknown option &#x27;9&#x27; for ICDR diabetic retinopathy. Allowed: 0, 1, 2, 3, 4, U."
        in response.content.decode()
    )
    assert not Grade.objects.exists()


def test_task_page_of_another_lab_unit_is_404_and_others_task_redirects(
    client, queued_image, resident, make_user, lab_unit, other_lab_unit
):
    image = queued_image(lab_unit=other_lab_unit)
    client.force_login(resident)
    task = GradingTask.objects.get(image=image, slot="primary")
    assert client.get(f"/grading/tasks/{task.pk}").status_code == 404
    queued_image()
    other = make_user(Role.RESIDENT, lab_units=[lab_unit])
    mine = services.task_next(user=other, disease="DR")
    response = client.get(f"/grading/tasks/{mine.pk}")
    assert response.status_code == 302 and response["Location"] == "/grading/"


def test_revision_from_the_grading_page(client, queued_image, resident, ophthalmologist):
    queued_image()
    client.force_login(resident)
    task = services.task_next(user=resident, disease="DR")
    services.grade_submit(user=resident, task_id=task.pk, option="1")
    page = client.get(f"/grading/tasks/{task.pk}").content.decode()
    assert "You may revise it" in page and "Save revision" in page
    response = client.post(f"/grading/tasks/{task.pk}", {"option": "2", "action": "save"})
    assert response.status_code == 302
    assert Grade.objects.filter(task=task).count() == 2
    secondary = services.task_next(user=ophthalmologist, disease="DR")
    services.grade_submit(user=ophthalmologist, task_id=secondary.pk, option="2")
    page = client.get(f"/grading/tasks/{task.pk}").content.decode()
    assert "can no longer be revised" in page and "Save revision" not in page


@pytest.fixture
def discrepancy_data(queued_image, resident, ophthalmologist, make_user, lab_unit):
    """Two disagreements, one agreement, and an AI grade that differs from a consensus."""
    for _ in range(3):
        queued_image()
    grade_pair(resident, ophthalmologist, "0", "3")
    grade_pair(resident, ophthalmologist, "1", "4")
    agreed = grade_pair(resident, ophthalmologist, "2", "2")
    model = AIModel.objects.create(name="Screener", version="1.0")
    icdr = GradeScheme.objects.get(code="icdr")
    services.grades_import_bulk(
        rows=[
            {
                "image_id": str(agreed.grade.image_id),
                "option_id": selectors.option_match(icdr, "0").pk,
                "probability": 0.1,
            }
        ],
        grader_type="ai",
        disease=Disease.objects.get(code="DR"),
        scheme=icdr,
        ai_model=model,
    )
    return {"ai_image": agreed.grade.image_id, "model": model}


def test_discrepancies_between_graders(client, discrepancy_data, ophthalmologist, resident):
    client.force_login(ophthalmologist)
    response = client.get("/grading/discrepancies")
    page = response.content.decode()
    assert "2 images" in page
    assert page.count("data-image-id=") == 2
    assert resident.username in page
    assert client.get(f"/grading/discrepancies?grader={resident.pk}").content.decode().count("data-image-id=") == 2
    other_unit = LabUnitFactory()
    page = client.get(f"/grading/discrepancies?lab_unit={other_unit.pk}").content.decode()
    assert "Select a valid choice" in page and "No discrepancies match" in page
    glaucoma = Disease.objects.get(code="GLAUCOMA")
    assert client.get(f"/grading/discrepancies?disease={glaucoma.pk}").content.decode().count("data-image-id=") == 0
    page = client.get("/grading/discrepancies?date_from=2000-01-01&date_to=1999-01-01").content.decode()
    assert "The start date is after the end date." in page and "No discrepancies match" in page
    today = __import__("django.utils.timezone").utils.timezone.localdate().isoformat()
    page = client.get(f"/grading/discrepancies?date_from={today}&date_to={today}").content.decode()
    assert page.count("data-image-id=") == 2


def test_discrepancies_ai_vs_consensus(client, discrepancy_data, ophthalmologist):
    client.force_login(ophthalmologist)
    page = client.get("/grading/discrepancies?kind=ai").content.decode()
    assert page.count("data-image-id=") == 1
    assert f'data-image-id="{discrepancy_data["ai_image"]}"' in page
    assert "Screener 1.0" in page


def test_discrepancies_filters_stay_in_scope(client, discrepancy_data, make_user):
    outsider = make_user(Role.OPHTHALMOLOGIST, lab_units=[LabUnitFactory()])
    client.force_login(outsider)
    page = client.get("/grading/discrepancies").content.decode()
    assert "0 images" in page


def _queries(client, url):
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(url)
    assert response.status_code == 200
    return len(ctx)


@pytest.mark.parametrize(
    "url", ["/grading/discrepancies", "/grading/discrepancies?kind=ai", "/grading/progress", "/grading/"]
)
def test_list_pages_keep_a_constant_number_of_queries(
    url, client, queued_image, resident, ophthalmologist, make_user, lab_unit
):
    manager = make_user(Role.OPHTHALMOLOGIST, Role.DATA_MANAGER, lab_units=[lab_unit])
    icdr = GradeScheme.objects.get(code="icdr")
    model = AIModel.objects.create(name="Screener", version="1.0")

    def add(n):
        for _ in range(n):
            queued_image()
        for _ in range(n):
            result = grade_pair(resident, ophthalmologist, "0", "3")
            arbitration = services.task_next(user=manager, disease="DR")
            services.grade_submit(user=manager, task_id=arbitration.pk, option="2")
            services.grades_import_bulk(
                rows=[{"image_id": str(result.grade.image_id), "option_id": selectors.option_match(icdr, "4").pk}],
                grader_type="ai",
                disease=Disease.objects.get(code="DR"),
                scheme=icdr,
                ai_model=model,
            )

    add(1)
    client.force_login(manager)
    few = _queries(client, url)
    add(4)
    many = _queries(client, url)
    assert few == many, (few, many)


def test_progress_page(client, queued_image, resident, ophthalmologist, lab_unit):
    for _ in range(3):
        queued_image()
    grade_pair(resident, ophthalmologist, "1", "1")
    services.task_next(user=resident, disease="DR")  # one in progress
    client.force_login(resident)
    page = client.get("/grading/progress").content.decode()
    primary_row = page.split(f'data-queue="{lab_unit.pk}-DR-primary"')[1].split("</tr>")[0]
    assert '"pending">1<' in primary_row and '"in_progress">1<' in primary_row and '"done">1<' in primary_row
    # A resident sees their own row and history, not the other graders.
    assert f'data-grader="{resident.username}"' in page and f'data-grader="{ophthalmologist.username}"' not in page
    assert 'data-testid="history"' in page and "Mild NPDR" in page
    client.force_login(ophthalmologist)
    page = client.get("/grading/progress").content.decode()
    assert f'data-grader="{resident.username}"' in page and f'data-grader="{ophthalmologist.username}"' in page


def test_image_grades_page_shows_everything_after_adjudication(
    client, queued_image, resident, ophthalmologist, arbitrator
):
    image = queued_image()
    grade_pair(resident, ophthalmologist, "0", "3")
    task = services.task_next(user=arbitrator, disease="DR")
    services.grade_submit(user=arbitrator, task_id=task.pk, option="2")
    client.force_login(resident)
    page = client.get(f"/grading/images/{image.pk}").content.decode()
    for text in ("Consensus: 2", "adjudication", resident.username, ophthalmologist.username, arbitrator.username):
        assert text in page
    assert page.count("data-grade-id=") == 3


@pytest.fixture
def superuser(make_user):
    return make_user(Role.ADMIN, is_superuser=True, is_staff=True)


def test_admin_keeps_used_option_codes(client, superuser, queued_image, resident):
    queued_image()
    task = services.task_next(user=resident, disease="DR")
    services.grade_submit(user=resident, task_id=task.pk, option="1")
    scheme = GradeScheme.objects.get(code="icdr")
    client.force_login(superuser)
    url = f"/admin/grading/gradescheme/{scheme.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200
    form = page.context["adminform"].form
    inline = page.context["inline_admin_formsets"][0].formset
    data = {
        name: ("on" if value is True else value) for name, value in form.initial.items() if value not in (None, False)
    }
    data.update(
        {"agreement_rule": scheme.agreement_rule, "agreement_steps": scheme.agreement_steps, "name": scheme.name}
    )
    prefix = inline.prefix
    data.update(
        {
            f"{prefix}-TOTAL_FORMS": str(len(inline.forms)),
            f"{prefix}-INITIAL_FORMS": str(len(inline.forms)),
            f"{prefix}-MIN_NUM_FORMS": "0",
            f"{prefix}-MAX_NUM_FORMS": "1000",
        }
    )
    mild = GradeOption.objects.get(scheme=scheme, code="1")
    for i, option_form in enumerate(inline.forms):
        option = option_form.instance
        data.update(
            {
                f"{prefix}-{i}-id": str(option.pk),
                f"{prefix}-{i}-scheme": str(scheme.pk),
                f"{prefix}-{i}-code": option.code + ("X" if option.pk == mild.pk else ""),
                f"{prefix}-{i}-label": option.label,
                f"{prefix}-{i}-ordinal": str(option.ordinal),
                f"{prefix}-{i}-shortcut": option.shortcut,
                f"{prefix}-{i}-synonyms": __import__("json").dumps(option.synonyms),
            }
        )
        for flag in ("referable", "ungradable", "retired"):
            if getattr(option, flag) or (flag == "retired" and option.pk == mild.pk):
                data[f"{prefix}-{i}-{flag}"] = "on"
    response = client.post(url, data)
    assert response.status_code == 302, response.context["errors"] if response.context else response
    mild.refresh_from_db()
    assert mild.code == "1" and mild.retired  # the code change was ignored, the retirement kept
    # Deleting a used option is refused with a message.
    index = next(i for i, f in enumerate(inline.forms) if f.instance.pk == mild.pk)
    data[f"{prefix}-{index}-DELETE"] = "on"
    response = client.post(url, data)
    assert response.status_code == 200
    assert "is used by grades and cannot be deleted" in response.content.decode()
    assert GradeOption.objects.filter(pk=mild.pk).exists()


def test_admin_refuses_a_second_active_scheme(client, superuser):
    client.force_login(superuser)
    desp = GradeScheme.objects.get(code="nhs-desp")
    url = f"/admin/grading/gradescheme/{desp.pk}/change/"
    data = {
        "disease": str(desp.disease_id),
        "code": desp.code,
        "name": desp.name,
        "is_active": "on",
        "agreement_rule": "exact",
        "agreement_steps": "1",
        "double_grading": "on",
        "blinded": "on",
        "options-TOTAL_FORMS": "0",
        "options-INITIAL_FORMS": "0",
        "options-MIN_NUM_FORMS": "0",
        "options-MAX_NUM_FORMS": "1000",
    }
    response = client.post(url, data)
    assert response.status_code == 200
    assert "This disease already has an active scheme: deactivate it first." in response.content.decode()


def test_discrepancies_filter_by_hospital(client, queued_image, make_user, lab_unit, other_lab_unit):
    """Hospital, like the other filters, narrows the list; a hospital outside the user's lab units is refused."""
    resident = make_user(Role.RESIDENT, lab_units=[lab_unit, other_lab_unit])
    ophthalmologist = make_user(Role.OPHTHALMOLOGIST, lab_units=[lab_unit, other_lab_unit])
    here = queued_image()
    there = queued_image(lab_unit=other_lab_unit)
    grade_pair(resident, ophthalmologist, "0", "3")
    grade_pair(resident, ophthalmologist, "1", "4")
    client.force_login(ophthalmologist)
    page = client.get("/grading/discrepancies").content.decode()
    assert page.count("data-image-id=") == 2
    for unit, image, other in ((lab_unit, here, there), (other_lab_unit, there, here)):
        page = client.get(f"/grading/discrepancies?hospital={unit.hospital_id}").content.decode()
        assert page.count("data-image-id=") == 1
        assert f'data-image-id="{image.pk}"' in page and f'data-image-id="{other.pk}"' not in page
    stranger = LabUnitFactory()
    page = client.get(f"/grading/discrepancies?hospital={stranger.hospital_id}").content.decode()
    assert "Select a valid choice" in page and page.count("data-image-id=") == 0


def test_grading_page_shows_pregraded_grades_only_when_the_scheme_allows(
    client, queued_image, resident, ophthalmologist, icdr
):
    image = queued_image(is_pregraded=True)
    services.grades_import_bulk(
        rows=[{"image_id": str(image.pk), "option_id": selectors.option_match(icdr, "4").pk, "remarks": "NVD seen"}],
        grader_type="resident",
        disease=Disease.objects.get(code="DR"),
        scheme=icdr,
        grader=resident,
    )
    task = services.task_next(user=ophthalmologist, disease="DR")
    client.force_login(ophthalmologist)
    page = client.get(f"/grading/tasks/{task.pk}").content.decode()
    assert 'data-testid="other-grades"' not in page and "NVD seen" not in page
    GradeScheme.objects.filter(code="icdr").update(graders_see_pregraded=True)
    page = client.get(f"/grading/tasks/{task.pk}").content.decode()
    other = page.split('data-testid="other-grades"')[1].split("</ul>")[0]
    assert 'data-grader-type="resident"' in other and "4 · Proliferative DR" in other and "NVD seen" in other
    # An image that was not pre-graded shows nothing, even with the scheme's permission.
    services.task_skip(user=ophthalmologist, task_id=task.pk)
    queued_image()
    plain = services.task_next(user=ophthalmologist, disease="DR")
    assert plain.image_id != image.pk
    page = client.get(f"/grading/tasks/{plain.pk}").content.decode()
    assert 'data-testid="other-grades"' not in page


def test_grading_page_and_api_show_the_other_eye_side_by_side(client, api_client, queued_image, resident, monkeypatch):
    """Left and right images of the same visit: a registered provider knows them; the page shows both viewers and the
    API lists the companion, never a patient identifier."""
    from grading import hooks

    image = queued_image(original_name="Jane-Doe-right.jpg")
    other_eye = queued_image(original_name="Jane-Doe-left.jpg")
    monkeypatch.setattr(hooks, "_companion_providers", [lambda img, user: [other_eye] if img.pk == image.pk else []])
    task = services.task_next(user=resident, disease="DR")
    assert task.image_id == image.pk
    client.force_login(resident)
    page = client.get(f"/grading/tasks/{task.pk}").content.decode()
    assert page.count('data-testid="viewer"') == 1 and page.count('data-testid="companion-viewer"') == 1
    assert f'data-src="/images/{image.pk}/file"' in page and f'data-src="/images/{other_eye.pk}/file"' in page
    assert "Jane-Doe" not in page
    api_client.force_authenticate(resident)
    body = api_client.get(f"/api/grading/tasks/{task.pk}").json()
    assert [c["image_id"] for c in body["companions"]] == [str(other_eye.pk)]
    assert "Jane-Doe" not in str(body)
