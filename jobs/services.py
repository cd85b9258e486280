"""Writes for the jobs engine: create jobs, claim and run items, finish jobs, reap items lost with their worker."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from jobs import registry
from jobs.models import Job, JobItem

log = logging.getLogger(__name__)

ONE_OR_MORE_FAILED = "One or more files failed"
UNEXPECTED_ERROR = "Processing failed because of an unexpected error. The file was not stored; please try again or contact an administrator."
TRANSIENT_EXHAUSTED = "Could not be processed: storage or database unavailable after several attempts. Please upload this file again later."
INTERRUPTED = "Processing was interrupted (the worker stopped) and did not complete after {attempts} attempts. The file was not stored; please upload it again."
TRANSIENT_MAX_ATTEMPTS = 4


@dataclass
class ItemSpec:
    """One submitted file: either staged for processing, or refused at request time with ``error``."""

    filename: str
    staged_name: str = ""
    size: int | None = None
    error: str = ""
    result: dict = field(default_factory=dict)


def _enqueue(item_ids: list[int], countdown: float | None = None) -> None:
    """Send the items to the broker once the surrounding transaction commits, and note when each was sent.

    An item the broker refused (broker down) keeps an empty ``enqueued_at``; the reaper sends it again.
    """
    from jobs.tasks import run_item

    if not item_ids:
        return

    def send() -> None:
        sent_at = timezone.now()
        sent = []
        for item_id in item_ids:
            try:
                if countdown:
                    run_item.apply_async(kwargs={"item_id": item_id}, countdown=countdown)
                else:
                    run_item.delay(item_id=item_id)
            except Exception:  # the broker being down must not lose the upload: the reaper re-sends queued items
                log.exception("Could not enqueue job item %s; the reaper will send it again", item_id)
            else:
                sent.append(item_id)
        if sent:
            # Items a worker already claimed are no longer queued and need no mark.
            JobItem.objects.filter(pk__in=sent, status=JobItem.Status.QUEUED).update(enqueued_at=sent_at)

    transaction.on_commit(send)


@transaction.atomic
def job_create(
    *,
    kind: str,
    user,
    items: list[ItemSpec],
    lab_unit=None,
    params: dict | None = None,
    client_ip: str | None = None,
    user_agent: str = "",
) -> Job:
    """Create a job with one item per submitted file; refused files become ``error`` items with their reason.

    Items to process are sent to the broker only after the transaction commits.
    """
    registry.get(kind)  # fail loudly on an unknown kind
    job = Job.objects.create(
        kind=kind,
        created_by=user,
        lab_unit=lab_unit,
        params=params or {},
        rejected_count=sum(1 for spec in items if spec.error),
        client_ip=client_ip,
        user_agent=(user_agent or "")[:400],
    )
    now = timezone.now()
    rows = JobItem.objects.bulk_create(
        [
            JobItem(
                job=job,
                position=position,
                filename=spec.filename[:255],
                staged_name=spec.staged_name,
                size=spec.size,
                status=JobItem.Status.ERROR if spec.error else JobItem.Status.QUEUED,
                error=spec.error,
                result=spec.result,
                finished_at=now if spec.error else None,
            )
            for position, spec in enumerate(items)
        ]
    )
    queued = [row.pk for row in rows if row.status == JobItem.Status.QUEUED]
    if queued and any(row.pk is None for row in rows):  # backends that do not return ids from bulk inserts
        queued = list(job.items.filter(status=JobItem.Status.QUEUED).values_list("pk", flat=True))
    if queued:
        _enqueue(queued)
    else:
        job_finish_if_complete(job_id=job.pk)
        job.refresh_from_db()
    return job


def item_claim(*, item_id: int) -> JobItem | None:
    """Take a queued item for this worker with one conditional update; ``None`` if someone else has it."""
    now = timezone.now()
    claimed = JobItem.objects.filter(pk=item_id, status=JobItem.Status.QUEUED).update(
        status=JobItem.Status.PROCESSING, started_at=now, heartbeat_at=now, attempts=F("attempts") + 1
    )
    if not claimed:
        return None
    item = JobItem.objects.select_related("job", "job__created_by").get(pk=item_id)
    Job.objects.filter(pk=item.job_id, status=Job.Status.QUEUED).update(status=Job.Status.PROCESSING, started_at=now)
    return item


def item_heartbeat(*, item: JobItem) -> None:
    """Long handlers call this now and then so the reaper knows the item is still alive."""
    JobItem.objects.filter(pk=item.pk, status=JobItem.Status.PROCESSING).update(heartbeat_at=timezone.now())


def _item_finish(item: JobItem, *, status: str, error: str = "", result: dict | None = None) -> bool:
    updated = JobItem.objects.filter(pk=item.pk, status=JobItem.Status.PROCESSING).update(
        status=status, error=error, result=result if result is not None else item.result, finished_at=timezone.now()
    )
    return bool(updated)


def item_run(*, item_id: int) -> None:
    """Run one item through its kind's handler and record the outcome. Safe to call twice for the same item."""
    item = item_claim(item_id=item_id)
    if item is None:
        return
    handler = registry.get(item.job.kind)
    try:
        result = handler.process(item)
    except registry.ItemRejected as rejection:
        if _item_finish(item, status=JobItem.Status.ERROR, error=rejection.message, result=rejection.result):
            _rejected(handler, item, rejection.message)
    except (registry.TransientError, DatabaseError, OSError) as exc:
        _item_transient_failure(item, handler, exc)
        return
    except Exception:
        log.exception("Job item %s (%s) failed unexpectedly", item.pk, item.job.kind)
        if _item_finish(item, status=JobItem.Status.ERROR, error=UNEXPECTED_ERROR):
            _rejected(handler, item, UNEXPECTED_ERROR)
    else:
        _item_finish(item, status=JobItem.Status.COMPLETED, result=result or {})
    job_finish_if_complete(job_id=item.job_id)


def _rejected(handler: registry.Handler, item: JobItem, message: str) -> None:
    if handler.on_rejected is not None:
        try:
            handler.on_rejected(item, message)
        except Exception:
            log.exception("Clean-up after refused item %s failed", item.pk)


def _item_transient_failure(item: JobItem, handler: registry.Handler, exc: Exception) -> None:
    log.warning("Job item %s hit a transient error (attempt %s): %s", item.pk, item.attempts, exc)
    if item.attempts >= TRANSIENT_MAX_ATTEMPTS:
        if _item_finish(item, status=JobItem.Status.ERROR, error=TRANSIENT_EXHAUSTED):
            _rejected(handler, item, TRANSIENT_EXHAUSTED)
        job_finish_if_complete(job_id=item.job_id)
        return
    with transaction.atomic():
        requeued = JobItem.objects.filter(pk=item.pk, status=JobItem.Status.PROCESSING).update(
            status=JobItem.Status.QUEUED, heartbeat_at=None, enqueued_at=None
        )
        if requeued:
            _enqueue([item.pk], countdown=2**item.attempts)


def job_finish_if_complete(*, job_id) -> None:
    """Close the job once no item is queued or processing: ``done`` if all completed, else ``error``."""
    if JobItem.objects.filter(job_id=job_id, status__in=[JobItem.Status.QUEUED, JobItem.Status.PROCESSING]).exists():
        return
    failed = JobItem.objects.filter(job_id=job_id, status=JobItem.Status.ERROR).exists()
    Job.objects.filter(pk=job_id).exclude(status__in=[Job.Status.DONE, Job.Status.ERROR]).update(
        status=Job.Status.ERROR if failed else Job.Status.DONE,
        error=ONE_OR_MORE_FAILED if failed else "",
        finished_at=timezone.now(),
    )


def reap_stale_items() -> dict:
    """Recover items lost with their worker, and re-send queued items the broker never got (or lost).

    An item processing with no heartbeat for ``JOB_ITEM_STALE_SECONDS`` is retried until it has had
    ``JOB_ITEM_MAX_ATTEMPTS`` attempts, then marked with a clear error. A queued item that never reached the broker
    (for ``JOB_ITEM_UNSENT_SECONDS``), or was sent more than ``JOB_ITEM_REQUEUE_SECONDS`` ago and is still queued, is
    sent again; a message delivered twice is harmless because workers claim items with a conditional update.
    """
    now = timezone.now()
    stale_before = now - timedelta(seconds=settings.JOB_ITEM_STALE_SECONDS)
    unsent_before = now - timedelta(seconds=settings.JOB_ITEM_UNSENT_SECONDS)
    requeue_before = now - timedelta(seconds=settings.JOB_ITEM_REQUEUE_SECONDS)
    retried, failed = [], 0
    stale = JobItem.objects.filter(status=JobItem.Status.PROCESSING).filter(
        Q(heartbeat_at__lt=stale_before) | Q(heartbeat_at__isnull=True)
    )
    for item in stale.select_related("job"):
        if item.attempts < settings.JOB_ITEM_MAX_ATTEMPTS:
            if JobItem.objects.filter(pk=item.pk, status=JobItem.Status.PROCESSING, attempts=item.attempts).update(
                status=JobItem.Status.QUEUED, heartbeat_at=None, enqueued_at=None
            ):
                log.warning("Job item %s was lost with its worker; running it again", item.pk)
                retried.append(item.pk)
        else:
            message = INTERRUPTED.format(attempts=item.attempts)
            if _item_finish(item, status=JobItem.Status.ERROR, error=message):
                failed += 1
                try:
                    _rejected(registry.get(item.job.kind), item, message)
                except LookupError:
                    pass
                job_finish_if_complete(job_id=item.job_id)
    lost = list(
        JobItem.objects.filter(status=JobItem.Status.QUEUED)
        .filter(
            Q(enqueued_at__isnull=True, created_at__lt=unsent_before) | Q(enqueued_at__lt=requeue_before),
        )
        .exclude(pk__in=retried)
        .order_by("pk")
        .values_list("pk", flat=True)[: settings.JOB_ITEM_RESEND_BATCH]
    )
    with transaction.atomic():
        _enqueue(retried + lost)
    return {"retried": len(retried), "failed": failed, "resent": len(lost)}
