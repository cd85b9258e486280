"""The queues: order, who gets which slot, leases and their expiry, skipping, task creation."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import Disease, Role
from common.api import Forbidden, ServiceError
from grading import services
from grading.models import GradingSkip, GradingTask
from uploads.models import Image


def test_tasks_are_created_once_per_slot(make_image):
    image = make_image()
    first = services.grading_tasks_create(image=image)
    again = services.grading_tasks_create(image=image)
    assert sorted(t.slot for t in first) == ["primary", "secondary"]
    assert sorted(t.pk for t in again) == sorted(t.pk for t in first)
    assert GradingTask.objects.filter(image=image).count() == 2
    task = first[0]
    assert task.scheme.code == "icdr" and task.lab_unit_id == image.lab_unit_id
    image.refresh_from_db()
    assert image.grading_status == "awaiting"


def test_tasks_for_other_diseases_and_a_disease_without_scheme(make_image):
    from grading.models import GradeScheme

    image = make_image()
    glaucoma, amd = Disease.objects.get(code="GLAUCOMA"), Disease.objects.get(code="AMD")
    GradeScheme.objects.filter(code="amd-beckman").update(is_active=False)
    tasks = services.grading_tasks_create(image=image, diseases=[glaucoma, amd])
    assert {(t.disease_id, t.slot) for t in tasks} == {(glaucoma.pk, "primary"), (glaucoma.pk, "secondary")}
    assert tasks[0].scheme.code == "glaucoma"


def test_queue_order_arbitration_then_half_graded_then_oldest(queued_image, make_user, lab_unit):
    now = timezone.now()
    old = queued_image(uploaded_at=now - timedelta(days=3))
    middle = queued_image(uploaded_at=now - timedelta(days=2))
    recent = queued_image(uploaded_at=now - timedelta(days=1))
    r1 = make_user(Role.RESIDENT, lab_units=[lab_unit])
    ophth = make_user(Role.OPHTHALMOLOGIST, lab_units=[lab_unit])
    # The oldest image first.
    task = services.task_next(user=r1, disease="DR")
    assert (task.image_id, task.slot) == (old.pk, "primary")
    services.grade_submit(user=r1, task_id=task.pk, option="1")
    # The ophthalmologist gets the half-graded image's secondary first.
    task = services.task_next(user=ophth, disease="DR")
    assert (task.image_id, task.slot) == (old.pk, "secondary")
    services.grade_submit(user=ophth, task_id=task.pk, option="3")  # disagreement: arbitration queued
    # Recent primary graded by another resident: its secondary is now half-graded and comes before the middle image.
    r2 = make_user(Role.RESIDENT, lab_units=[lab_unit])
    t_recent = GradingTask.objects.get(image=recent, slot="primary")
    GradingTask.objects.filter(pk=t_recent.pk).update(
        status="leased", leased_to=r2, lease_expires_at=now + timedelta(minutes=5)
    )
    services.grade_submit(user=r2, task_id=t_recent.pk, option="0")
    arbitrator = make_user(Role.OPHTHALMOLOGIST, lab_units=[lab_unit])
    order = []
    for _ in range(3):
        task = services.task_next(user=arbitrator, disease="DR")
        order.append((task.image_id, task.slot))
        services.task_skip(user=arbitrator, task_id=task.pk)
    assert order == [(old.pk, "arbitration"), (recent.pk, "secondary"), (middle.pk, "primary")]


def test_one_lease_per_grader_and_disease_is_resumed(queued_image, resident):
    queued_image()
    queued_image()
    first = services.task_next(user=resident, disease="DR")
    again = services.task_next(user=resident, disease="DR")
    assert again.pk == first.pk
    assert GradingTask.objects.filter(leased_to=resident).count() == 1


def test_never_a_second_slot_of_an_image_one_graded(queued_image, ophthalmologist):
    image = queued_image()
    task = services.task_next(user=ophthalmologist, disease="DR")
    assert task.slot == "primary"
    services.grade_submit(user=ophthalmologist, task_id=task.pk, option="2")
    assert services.task_next(user=ophthalmologist, disease="DR") is None
    assert GradingTask.objects.get(image=image, slot="secondary").status == "pending"


def test_slots_follow_roles(queued_image, resident, ophthalmologist):
    queued_image()
    task = services.task_next(user=resident, disease="DR")
    services.grade_submit(user=resident, task_id=task.pk, option="2")
    # Only the secondary slot is left: a resident may not take it.
    assert services.task_next(user=resident, disease="DR") is None
    assert services.task_next(user=ophthalmologist, disease="DR").slot == "secondary"


def test_queue_stays_inside_the_graders_lab_units(queued_image, make_user, other_lab_unit):
    queued_image(lab_unit=other_lab_unit)
    outsider = make_user(Role.RESIDENT, lab_units=[])
    with pytest.raises(Forbidden, match="not assigned to any lab unit"):
        services.task_next(user=outsider, disease="DR")
    from tests.factories import LabUnitFactory

    elsewhere = make_user(Role.RESIDENT, lab_units=[LabUnitFactory()])
    assert services.task_next(user=elsewhere, disease="DR") is None


def test_refused_without_a_grading_role_or_with_an_unknown_disease(make_user, lab_unit, resident):
    uploader = make_user(Role.UPLOADER, lab_units=[lab_unit])
    with pytest.raises(Forbidden, match="Your role does not allow grading"):
        services.task_next(user=uploader, disease="DR")
    with pytest.raises(ServiceError, match=r"Unknown disease 'XYZ'\. Use one of: DR, GLAUCOMA, AMD"):
        services.task_next(user=resident, disease="XYZ")


def test_an_expired_lease_returns_the_task_to_the_queue(queued_image, make_user, lab_unit, settings):
    queued_image()
    first = make_user(Role.RESIDENT, lab_units=[lab_unit])
    second = make_user(Role.RESIDENT, lab_units=[lab_unit])
    task = services.task_next(user=first, disease="DR")
    # The only primary is leased to the first resident; a resident may not take the secondary.
    assert services.task_next(user=second, disease="DR") is None
    GradingTask.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    taken = services.task_next(user=second, disease="DR")
    assert taken.pk == task.pk and taken.leased_to_id == second.pk
    # The first grader's grade is refused: the task is someone else's now.
    with pytest.raises(ServiceError, match="leased to another grader"):
        services.grade_submit(user=first, task_id=task.pk, option="1")


def test_lease_length_follows_the_setting(queued_image, resident, settings):
    settings.GRADING_LEASE_SECONDS = 600
    queued_image()
    before = timezone.now()
    task = services.task_next(user=resident, disease="DR")
    assert timedelta(seconds=599) <= task.lease_expires_at - before <= timedelta(seconds=601)


def test_skip_gives_the_task_to_others_but_not_back_to_the_skipper(queued_image, make_user, lab_unit):
    image = queued_image()
    r1 = make_user(Role.RESIDENT, lab_units=[lab_unit])
    r2 = make_user(Role.RESIDENT, lab_units=[lab_unit])
    task = services.task_next(user=r1, disease="DR")
    services.task_skip(user=r1, task_id=task.pk)
    assert services.task_next(user=r1, disease="DR") is None
    assert services.task_next(user=r2, disease="DR").pk == task.pk
    assert GradingSkip.objects.filter(user=r1, task=task).exists()
    # Returned skipped tasks come back (once the other grader lets it go).
    services.task_skip(user=r2, task_id=task.pk)
    assert services.skips_clear(user=r1) == 1
    assert services.task_next(user=r1, disease="DR").image_id == image.pk


def test_skip_and_renew_only_for_the_lease_holder(queued_image, resident, ophthalmologist):
    queued_image()
    task = services.task_next(user=resident, disease="DR")
    with pytest.raises(ServiceError, match="only skip a task you hold"):
        services.task_skip(user=ophthalmologist, task_id=task.pk)
    with pytest.raises(ServiceError, match="not leased to you"):
        services.task_lease_renew(user=ophthalmologist, task_id=task.pk)
    GradingTask.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() + timedelta(seconds=5))
    renewed = services.task_lease_renew(user=resident, task_id=task.pk)
    assert renewed.lease_expires_at > timezone.now() + timedelta(minutes=5)
    GradingTask.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=5))
    with pytest.raises(ServiceError, match="lease on this task expired"):
        services.task_lease_renew(user=resident, task_id=task.pk)


def test_next_task_query_count_does_not_grow_with_the_queue(
    queued_image, resident, django_assert_num_queries, lab_unit
):
    for _ in range(3):
        queued_image()
    resident.refresh_from_db()
    # roles, lab units, disease, user row lock, held lease, candidate, lease update (+ savepoint and release)
    with django_assert_num_queries(9):
        assert services.task_next(user=resident, disease="DR") is not None
    GradingTask.objects.update(status="pending", leased_to=None, lease_expires_at=None)
    for _ in range(20):
        queued_image()
    resident.refresh_from_db()
    for attr in ("_access_roles", "_access_lab_units"):
        resident.__dict__.pop(attr, None)
    with django_assert_num_queries(9):
        assert services.task_next(user=resident, disease="DR") is not None


def test_the_upload_signal_creates_tasks(api_client, uploader, upload_fields, jpeg_file, run_jobs):
    api_client.force_authenticate(uploader)
    with run_jobs():
        response = api_client.post("/api/direct/upload", {**upload_fields, "files": [jpeg_file()]}, format="multipart")
    assert response.status_code == 202, response.content
    image = Image.objects.get()
    assert sorted(GradingTask.objects.filter(image=image).values_list("slot", flat=True)) == ["primary", "secondary"]
    assert image.grading_status == "awaiting"


def test_backfill_command_creates_missing_tasks(make_image):
    from django.core.management import call_command

    images = [make_image() for _ in range(3)]
    call_command("grading_backfill", "--batch-size", "2")
    assert GradingTask.objects.filter(image__in=images).count() == 6
    call_command("grading_backfill")
    assert GradingTask.objects.filter(image__in=images).count() == 6
