"""The jobs engine: claiming, outcomes, retries of transient failures, the reaper, and job status transitions."""

from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.utils import timezone
from kombu.exceptions import OperationalError

from accounts.models import Role
from jobs import registry, services, tasks
from jobs.models import Job, JobItem
from jobs.services import ItemSpec
from tests.foundation.conftest import jpeg, stored_files
from uploads.models import Image

pytestmark = pytest.mark.django_db

KIND = "test_engine"


class Script:
    """What the test handler does per file name: a list of outcomes consumed one call at a time."""

    def __init__(self):
        self.plan: dict[str, list] = {}
        self.calls: list[str] = []
        self.rejected: list[tuple[str, str]] = []

    def process(self, item: JobItem) -> dict:
        self.calls.append(item.filename)
        outcome = self.plan.get(item.filename, ["ok"]).pop(0) if self.plan.get(item.filename) else "ok"
        if outcome == "ok":
            return {"summary": f"processed {item.filename}"}
        if outcome == "reject":
            raise registry.ItemRejected(f"{item.filename} is not acceptable: use a JPG")
        if outcome == "transient":
            raise registry.TransientError("storage briefly unavailable")
        raise RuntimeError("a bug")

    def on_rejected(self, item: JobItem, message: str) -> None:
        self.rejected.append((item.filename, message))


@pytest.fixture
def script():
    s = Script()
    registry.register(registry.Handler(kind=KIND, label="Engine test", process=s.process, on_rejected=s.on_rejected))
    return s


@pytest.fixture
def owner(make_user, lab_unit):
    return make_user(Role.UPLOADER, lab_units=[lab_unit])


def make_job(owner, names, errors=None):
    errors = errors or {}
    specs = [ItemSpec(filename=n, error=errors.get(n, "")) for n in names]
    return services.job_create(kind=KIND, user=owner, items=specs, lab_unit=owner.lab_units.first())


def test_job_create_makes_one_item_per_file_in_order_and_enqueues_after_commit(
    owner, script, django_capture_on_commit_callbacks
):
    with mock.patch.object(tasks.run_item, "delay") as delay:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            job = make_job(owner, ["a", "b", "c"], errors={"b": "Refused before processing"})
            assert delay.call_count == 0  # nothing is sent while the transaction is open
        for callback in callbacks:
            callback()
    items = list(job.items.order_by("position"))
    assert [i.filename for i in items] == ["a", "b", "c"]
    assert [i.status for i in items] == ["queued", "error", "queued"]
    assert items[1].error == "Refused before processing"
    assert job.rejected_count == 1
    assert sorted(c.kwargs["item_id"] for c in delay.call_args_list) == [items[0].pk, items[2].pk]
    assert all(i.enqueued_at for i in JobItem.objects.filter(status="queued"))


def test_unknown_kind_is_refused(owner):
    with pytest.raises(LookupError):
        services.job_create(kind="no-such-kind", user=owner, items=[ItemSpec(filename="x")])
    assert Job.objects.count() == 0


def test_claim_is_a_conditional_update_and_idempotent(owner, script, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = make_job(owner, ["a"])
    item = job.items.get()
    claimed = services.item_claim(item_id=item.pk)
    assert claimed is not None and claimed.status == "processing" and claimed.attempts == 1
    assert services.item_claim(item_id=item.pk) is None  # a second delivery finds it taken
    job.refresh_from_db()
    assert job.status == "processing" and job.started_at is not None

    # Running a delivered-twice message does nothing once the item is finished.
    JobItem.objects.filter(pk=item.pk).update(status="completed")
    services.item_run(item_id=item.pk)
    assert script.calls == []


def test_item_run_twice_processes_once(owner, script, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = make_job(owner, ["a"])
    item = job.items.get()
    services.item_run(item_id=item.pk)
    services.item_run(item_id=item.pk)
    assert script.calls == ["a"]
    item.refresh_from_db()
    assert item.status == "completed" and item.result == {"summary": "processed a"} and item.finished_at


def test_the_task_is_late_acknowledged_and_redelivered_if_its_worker_dies():
    for task in (tasks.run_item, tasks.reap_stale_items):
        assert task.acks_late is True
        assert task.reject_on_worker_lost is True

    import runpy

    # On Redis a worker process holds one message at a time, so a long item never holds others back behind it.
    with mock.patch.dict("os.environ", {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/9"}):
        conf = runpy.run_path(str(settings.BASE_DIR / "config" / "settings.py"))
    assert conf["CELERY_WORKER_PREFETCH_MULTIPLIER"] == 1
    assert settings.CELERY_BEAT_SCHEDULE["reap-stale-job-items"]["task"] == tasks.reap_stale_items.name


def test_redis_visibility_timeout_outlasts_an_item():
    """A late-acknowledged message on Redis is redelivered only after the visibility timeout: it must outlast the
    time after which the reaper considers an item lost, so a slow item is not run twice at once."""
    import runpy

    with mock.patch.dict("os.environ", {"CELERY_BROKER_URL": "redis://127.0.0.1:6379/9"}):
        conf = runpy.run_path(str(settings.BASE_DIR / "config" / "settings.py"))
    assert conf["CELERY_BROKER_TRANSPORT_OPTIONS"]["visibility_timeout"] >= conf["JOB_ITEM_STALE_SECONDS"]


def test_outcomes_are_independent_and_the_job_ends_in_error(owner, script, run_jobs):
    script.plan = {"bad": ["reject"], "bug": ["crash"]}
    with run_jobs():
        job = make_job(owner, ["good1", "bad", "bug", "good2"])
    job.refresh_from_db()
    items = {i.filename: i for i in job.items.all()}
    assert items["good1"].status == items["good2"].status == "completed"
    assert items["bad"].status == "error" and items["bad"].error == "bad is not acceptable: use a JPG"
    assert items["bug"].status == "error" and items["bug"].error == services.UNEXPECTED_ERROR
    assert "Traceback" not in items["bug"].error
    assert job.status == "error" and job.error == "One or more files failed"
    assert job.finished_at is not None
    assert sorted(name for name, _ in script.rejected) == ["bad", "bug"]


def test_job_done_when_every_item_completed(owner, script, run_jobs):
    with run_jobs():
        job = make_job(owner, ["a", "b"])
    job.refresh_from_db()
    assert job.status == "done" and job.error == "" and job.finished_at >= job.started_at >= job.created_at


def test_job_whose_files_were_all_refused_ends_at_once(owner, script):
    job = make_job(owner, ["a", "b"], errors={"a": "too big", "b": "wrong type"})
    assert job.status == "error" and job.error == "One or more files failed" and job.rejected_count == 2
    assert script.calls == []


def test_status_transitions_queued_processing_done(owner, script, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = make_job(owner, ["a", "b"])
    assert job.status == "queued"
    first, second = job.items.order_by("position")
    services.item_run(item_id=first.pk)
    job.refresh_from_db()
    assert job.status == "processing" and job.finished_at is None
    services.item_run(item_id=second.pk)
    job.refresh_from_db()
    assert job.status == "done"


def test_transient_failure_is_retried(owner, script, run_jobs):
    script.plan = {"flaky": ["transient", "transient", "ok"]}
    with run_jobs():
        job = make_job(owner, ["flaky"])
    item = job.items.get()
    assert item.status == "completed" and item.attempts == 3
    assert script.calls == ["flaky", "flaky", "flaky"]
    job.refresh_from_db()
    assert job.status == "done"


def test_transient_failure_retries_are_bounded(owner, script, run_jobs):
    script.plan = {"down": ["transient"] * 10}
    with run_jobs():
        job = make_job(owner, ["down"])
    item = job.items.get()
    assert item.status == "error" and item.error == services.TRANSIENT_EXHAUSTED
    assert item.attempts == services.TRANSIENT_MAX_ATTEMPTS
    assert script.rejected == [("down", services.TRANSIENT_EXHAUSTED)]
    job.refresh_from_db()
    assert job.status == "error"


def _age(item_id, **fields):
    JobItem.objects.filter(pk=item_id).update(**fields)


def test_reaper_retries_a_stale_item_once_then_gives_a_clear_error(
    owner, script, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        job = make_job(owner, ["lost", "fine"])
    lost, fine = job.items.order_by("position")
    services.item_run(item_id=fine.pk)
    assert services.item_claim(item_id=lost.pk)  # a worker takes it ... and dies
    long_ago = timezone.now() - timedelta(seconds=settings.JOB_ITEM_STALE_SECONDS + 5)
    _age(lost.pk, heartbeat_at=long_ago)

    with mock.patch.object(tasks.run_item, "delay") as delay, django_capture_on_commit_callbacks(execute=True):
        assert services.reap_stale_items() == {"retried": 1, "failed": 0, "resent": 0}
    delay.assert_called_once_with(item_id=lost.pk)
    lost.refresh_from_db()
    assert lost.status == "queued" and lost.attempts == 1

    assert services.item_claim(item_id=lost.pk).attempts == 2  # the second attempt dies too
    _age(lost.pk, heartbeat_at=long_ago)
    with mock.patch.object(tasks.run_item, "delay") as delay, django_capture_on_commit_callbacks(execute=True):
        assert services.reap_stale_items() == {"retried": 0, "failed": 1, "resent": 0}
    delay.assert_not_called()
    lost.refresh_from_db()
    assert lost.status == "error"
    assert lost.error == (
        "Processing was interrupted (the worker stopped) and did not complete after 2 attempts. "
        "The file was not stored; please upload it again."
    )
    assert script.rejected == [("lost", lost.error)]
    job.refresh_from_db()
    assert job.status == "error" and job.error == "One or more files failed"


def test_reaper_leaves_live_items_alone(owner, script, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        job = make_job(owner, ["busy"])
    item = job.items.get()
    services.item_claim(item_id=item.pk)
    services.item_heartbeat(item=item)
    assert services.reap_stale_items() == {"retried": 0, "failed": 0, "resent": 0}
    item.refresh_from_db()
    assert item.status == "processing"


def test_queued_items_the_broker_never_got_are_sent_again(owner, script, settings, django_capture_on_commit_callbacks):
    broken = mock.patch.object(tasks.run_item, "delay", side_effect=OperationalError("broker down"))
    with broken, django_capture_on_commit_callbacks(execute=True):
        job = make_job(owner, ["a", "b"])
    a, b = job.items.order_by("position")
    assert a.status == b.status == "queued"
    assert a.enqueued_at is None and b.enqueued_at is None  # nothing reached the broker

    # Not yet: the items are younger than the grace period.
    assert services.reap_stale_items()["resent"] == 0
    past = timezone.now() - timedelta(seconds=settings.JOB_ITEM_UNSENT_SECONDS + 1)
    JobItem.objects.filter(job=job).update(created_at=past)
    with mock.patch.object(tasks.run_item, "delay") as delay, django_capture_on_commit_callbacks(execute=True):
        assert services.reap_stale_items()["resent"] == 2
    assert sorted(c.kwargs["item_id"] for c in delay.call_args_list) == [a.pk, b.pk]
    assert all(i.enqueued_at for i in job.items.all())
    # Sent once: the next run leaves them alone until the message looks lost.
    with mock.patch.object(tasks.run_item, "delay") as delay:
        assert services.reap_stale_items()["resent"] == 0
    delay.assert_not_called()
    JobItem.objects.filter(job=job).update(
        enqueued_at=timezone.now() - timedelta(seconds=settings.JOB_ITEM_REQUEUE_SECONDS + 1)
    )
    with mock.patch.object(tasks.run_item, "delay") as delay, django_capture_on_commit_callbacks(execute=True):
        assert services.reap_stale_items()["resent"] == 2


def test_reaped_upload_refunds_quota_and_leaves_no_staged_file(
    fresh_storages, uploader, upload_fields, api_upload, settings, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False):
        response = api_upload(uploader, upload_fields, [jpeg("a.jpg")])
    item = JobItem.objects.get(job_id=response.json()["job_id"])
    uploader.refresh_from_db()
    assert uploader.upload_count == 1 and stored_files("staging") == [item.staged_name]
    for _ in range(settings.JOB_ITEM_MAX_ATTEMPTS):
        services.item_claim(item_id=item.pk)
        _age(item.pk, heartbeat_at=timezone.now() - timedelta(seconds=settings.JOB_ITEM_STALE_SECONDS + 1))
        with mock.patch.object(tasks.run_item, "delay"):
            services.reap_stale_items()
    item.refresh_from_db()
    assert item.status == "error" and "interrupted" in item.error
    uploader.refresh_from_db()
    assert uploader.upload_count == 0
    assert stored_files("staging") == [] and stored_files("default") == []


def test_an_upload_item_run_again_after_its_worker_died_keeps_its_image(
    fresh_storages, uploader, upload_fields, api_upload, django_capture_on_commit_callbacks
):
    """The worker stored the image, then died before recording it: the re-run finds that image, not a duplicate."""
    with django_capture_on_commit_callbacks(execute=False):
        response = api_upload(uploader, upload_fields, [jpeg("a.jpg")])
    item = JobItem.objects.get(job_id=response.json()["job_id"])
    services.item_run(item_id=item.pk)
    image = Image.objects.get()
    JobItem.objects.filter(pk=item.pk).update(status="queued", result={})  # as if the outcome was never written
    Job.objects.filter(pk=item.job_id).update(status="processing", finished_at=None)
    services.item_run(item_id=item.pk)
    item.refresh_from_db()
    assert item.status == "completed" and item.result == {"image_id": str(image.pk)}
    assert Image.objects.count() == 1 and stored_files("duplicates") == []
    uploader.refresh_from_db()
    assert uploader.upload_count == 1
