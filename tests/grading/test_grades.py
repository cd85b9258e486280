"""Grading a task: every refusal says why and writes nothing; grades are never overwritten (history)."""

from datetime import timedelta

import pytest
from django.http import Http404
from django.utils import timezone

from accounts.models import Role
from common.api import Conflict, Forbidden, ServiceError
from grading import services
from grading.models import Consensus, Grade, GradeOption, GradingTask

PRIMARY, AGREEMENT, DISAGREEMENT = 14, 15, 14


def snapshot():
    return (
        list(Grade.objects.order_by("pk").values_list("pk", "is_current")),
        list(Consensus.objects.order_by("pk").values_list("pk", "is_current")),
        list(GradingTask.objects.order_by("pk").values_list("pk", "status", "leased_to", "completed_by")),
    )


def lease(task, user, minutes=10):
    GradingTask.objects.filter(pk=task.pk).update(
        status="leased",
        leased_to=user,
        leased_at=timezone.now(),
        lease_expires_at=timezone.now() + timedelta(minutes=minutes),
    )


@pytest.fixture
def disagreement(queued_image, resident, ophthalmologist):
    """An image whose primary (1) and secondary (3) disagree: its arbitration task is queued."""
    image = queued_image()
    task = services.task_next(user=resident, disease="DR")
    services.grade_submit(user=resident, task_id=task.pk, option="1", remarks="few microaneurysms")
    task = services.task_next(user=ophthalmologist, disease="DR")
    services.grade_submit(user=ophthalmologist, task_id=task.pk, option="3")
    return image


# --- Bad input: refused with a clear message, nothing written --------------------------------------------------------


def test_option_outside_the_scheme(queued_image, resident):
    queued_image()
    task = services.task_next(user=resident, disease="DR")
    before = snapshot()
    with pytest.raises(ServiceError) as exc:
        services.grade_submit(user=resident, task_id=task.pk, option="R2")
    assert exc.value.message == "Unknown option 'R2' for ICDR diabetic retinopathy. Allowed: 0, 1, 2, 3, 4, U."
    with pytest.raises(ServiceError, match="Choose an option: one of 0, 1, 2, 3, 4, U"):
        services.grade_submit(user=resident, task_id=task.pk, option="")
    assert snapshot() == before


def test_retired_option(queued_image, resident):
    queued_image()
    GradeOption.objects.filter(scheme__code="icdr", code="3").update(retired=True)
    task = services.task_next(user=resident, disease="DR")
    before = snapshot()
    with pytest.raises(ServiceError, match=r"Option '3' is retired and takes no new grades\. Allowed: 0, 1, 2, 4, U\."):
        services.grade_submit(user=resident, task_id=task.pk, option="3")
    assert snapshot() == before


def test_task_leased_to_someone_else(queued_image, resident, make_user, lab_unit):
    queued_image()
    task = services.task_next(user=resident, disease="DR")
    other = make_user(Role.RESIDENT, lab_units=[lab_unit])
    before = snapshot()
    with pytest.raises(Conflict) as exc:
        services.grade_submit(user=other, task_id=task.pk, option="1")
    assert exc.value.message == "This task is leased to another grader. Ask for your next task instead."
    assert snapshot() == before


def test_task_not_leased_at_all(queued_image, resident):
    image = queued_image()
    task = GradingTask.objects.get(image=image, slot="primary")
    before = snapshot()
    with pytest.raises(Conflict, match=r"not leased to you\. Ask for your next task first"):
        services.grade_submit(user=resident, task_id=task.pk, option="1")
    assert snapshot() == before


def test_expired_lease(queued_image, resident):
    queued_image()
    task = services.task_next(user=resident, disease="DR")
    GradingTask.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    before = snapshot()
    with pytest.raises(
        Conflict,
        match=r"Your lease on this task expired at \d\d:\d\d:\d\d and the task went back to the queue; nothing was saved",
    ):
        services.grade_submit(user=resident, task_id=task.pk, option="1")
    assert snapshot() == before


def test_slot_the_role_does_not_allow(queued_image, resident):
    image = queued_image()
    secondary = GradingTask.objects.get(image=image, slot="secondary")
    lease(secondary, resident)
    before = snapshot()
    with pytest.raises(Forbidden) as exc:
        services.grade_submit(user=resident, task_id=secondary.pk, option="1")
    assert exc.value.message == "Your role does not allow grading the secondary slot (ophthalmologists only)."
    assert snapshot() == before


def test_second_slot_by_the_same_grader(queued_image, ophthalmologist):
    image = queued_image()
    task = services.task_next(user=ophthalmologist, disease="DR")
    services.grade_submit(user=ophthalmologist, task_id=task.pk, option="2")
    secondary = GradingTask.objects.get(image=image, slot="secondary")
    lease(secondary, ophthalmologist)
    before = snapshot()
    with pytest.raises(Conflict) as exc:
        services.grade_submit(user=ophthalmologist, task_id=secondary.pk, option="2")
    assert exc.value.message == (
        "You already graded this image (primary grade); its secondary grade must come from another grader."
    )
    assert snapshot() == before


def test_arbitration_by_someone_who_graded_the_image(disagreement, ophthalmologist):
    arbitration = GradingTask.objects.get(image=disagreement, slot="arbitration")
    lease(arbitration, ophthalmologist)
    before = snapshot()
    with pytest.raises(Forbidden) as exc:
        services.grade_submit(user=ophthalmologist, task_id=arbitration.pk, option="2")
    assert exc.value.message == (
        "You graded this image, so you cannot arbitrate it: arbitration must come from an ophthalmologist who graded "
        "neither slot."
    )
    assert snapshot() == before
    # Nor does the queue offer it to them.
    GradingTask.objects.filter(pk=arbitration.pk).update(status="pending", leased_to=None, lease_expires_at=None)
    assert services.task_next(user=ophthalmologist, disease="DR") is None


def test_arbitration_by_a_resident(disagreement, make_user, lab_unit):
    resident = make_user(Role.RESIDENT, lab_units=[lab_unit])
    arbitration = GradingTask.objects.get(image=disagreement, slot="arbitration")
    lease(arbitration, resident)
    before = snapshot()
    with pytest.raises(Forbidden, match=r"arbitration slot \(ophthalmologists only\)"):
        services.grade_submit(user=resident, task_id=arbitration.pk, option="2")
    assert snapshot() == before


def test_task_of_another_lab_unit_is_404(queued_image, other_lab_unit, make_user, resident):
    image = queued_image(lab_unit=other_lab_unit)
    task = GradingTask.objects.get(image=image, slot="primary")
    lease(task, resident)  # even leased to them, it is outside their lab units
    before = snapshot()
    with pytest.raises(Http404):
        services.grade_submit(user=resident, task_id=task.pk, option="1")
    with pytest.raises(Http404):
        services.grade_submit(user=resident, task_id=999999, option="1")
    assert snapshot() == before


def test_remarks_and_time_are_checked(queued_image, resident):
    queued_image()
    task = services.task_next(user=resident, disease="DR")
    before = snapshot()
    with pytest.raises(ServiceError, match=r"Remarks are too long \(2001 characters; at most 2000\)"):
        services.grade_submit(user=resident, task_id=task.pk, option="1", remarks="x" * 2001)
    with pytest.raises(ServiceError, match="seconds_spent must be between 0 and 86400"):
        services.grade_submit(user=resident, task_id=task.pk, option="1", seconds_spent=-3)
    assert snapshot() == before


# --- Results and history -----------------------------------------------------------------------------------------------


def test_grade_records_time_remarks_and_the_raw_value(queued_image, resident):
    queued_image()
    task = services.task_next(user=resident, disease="DR")
    result = services.grade_submit(user=resident, task_id=task.pk, option="u", remarks=" blurred ", seconds_spent=42)
    grade = result.grade
    assert (grade.option.code, grade.raw_value, grade.remarks, grade.seconds_spent) == ("U", "U", "blurred", 42)
    assert (grade.grader_type, grade.grader_id, grade.task_id) == ("primary", resident.pk, task.pk)
    task.refresh_from_db()
    assert (task.status, task.completed_by_id, task.leased_to_id) == ("done", resident.pk, None)


def test_time_spent_defaults_to_the_time_since_the_lease(queued_image, resident):
    queued_image()
    task = services.task_next(user=resident, disease="DR")
    GradingTask.objects.filter(pk=task.pk).update(leased_at=timezone.now() - timedelta(seconds=75))
    grade = services.grade_submit(user=resident, task_id=task.pk, option="0").grade
    assert 74 <= grade.seconds_spent <= 80


def test_revision_supersedes_and_keeps_history(queued_image, resident):
    image = queued_image()
    task = services.task_next(user=resident, disease="DR")
    first = services.grade_submit(user=resident, task_id=task.pk, option="1").grade
    second = services.grade_submit(user=resident, task_id=task.pk, option="2", remarks="second look")
    assert second.revised
    first.refresh_from_db()
    assert not first.is_current
    assert first.superseded_by == second.grade
    assert second.grade.supersedes == first and second.grade.is_current
    assert list(Grade.objects.filter(image=image).order_by("pk").values_list("option__code", "is_current")) == [
        ("1", False),
        ("2", True),
    ]


def test_no_revision_once_the_next_stage_started(disagreement, resident):
    task = GradingTask.objects.get(image=disagreement, slot="primary")
    before = snapshot()
    with pytest.raises(Conflict, match="next stage of this image's grading has started"):
        services.grade_submit(user=resident, task_id=task.pk, option="2")
    assert snapshot() == before


def test_someone_elses_done_task_cannot_take_a_grade(queued_image, resident, make_user, lab_unit):
    queued_image()
    task = services.task_next(user=resident, disease="DR")
    services.grade_submit(user=resident, task_id=task.pk, option="1")
    other = make_user(Role.OPHTHALMOLOGIST, lab_units=[lab_unit])
    with pytest.raises(Conflict, match="already graded by another grader"):
        services.grade_submit(user=other, task_id=task.pk, option="1")


def test_adjudication_keeps_the_grades_that_produced_it(disagreement, arbitrator):
    task = services.task_next(user=arbitrator, disease="DR")
    assert task.slot == "arbitration"
    result = services.grade_submit(user=arbitrator, task_id=task.pk, option="2", remarks="IRMA absent")
    record = result.consensus
    assert (record.method, record.option.code, record.decided_by_id) == ("adjudication", "2", arbitrator.pk)
    assert sorted(record.grades.values_list("grader_type", flat=True)) == ["arbitration", "primary", "secondary"]
    disagreement.refresh_from_db()
    assert disagreement.grading_status == "graded"
    # The arbitrator may revise: the new adjudication supersedes the old one, which stays.
    revised = services.grade_submit(user=arbitrator, task_id=task.pk, option="3").consensus
    record.refresh_from_db()
    assert not record.is_current and revised.supersedes_id == record.pk and revised.option.code == "3"
    assert Consensus.objects.filter(image=disagreement).count() == 2


def _grade(user, option, expected, django_assert_num_queries):
    task = services.task_next(user=user, disease="DR")
    user.__dict__.pop("_access_roles", None)
    user.__dict__.pop("_access_lab_units", None)
    with django_assert_num_queries(expected):
        services.grade_submit(user=user, task_id=task.pk, option=option)


@pytest.mark.parametrize("images", [2, 7])
def test_grade_query_counts_are_pinned(images, queued_image, resident, ophthalmologist, django_assert_num_queries):
    for _ in range(images):
        queued_image()
    # roles, lab units, task (404 check), options, lock the image's tasks, earlier grades, insert, task update, then
    # the state: current grades, consensus, priorities, image status (+ savepoint, release); the agreement adds the
    # consensus insert and its grade links minus the priority update; the disagreement the arbitration task.
    _grade(resident, "1", PRIMARY, django_assert_num_queries)
    _grade(ophthalmologist, "1", AGREEMENT, django_assert_num_queries)
    _grade(resident, "1", PRIMARY, django_assert_num_queries)
    _grade(ophthalmologist, "3", DISAGREEMENT, django_assert_num_queries)
