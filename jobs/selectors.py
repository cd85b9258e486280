"""Reads for jobs: which jobs a user may see, and the status document the processing page polls."""

from __future__ import annotations

from django.db.models import Count, Q, QuerySet
from django.http import Http404

from accounts import access
from jobs import registry
from jobs.models import Job, JobItem


def jobs_visible_to(user) -> QuerySet[Job]:
    """Admins see every job; data managers the jobs of their lab units; everyone their own jobs."""
    qs = Job.objects.select_related("created_by", "lab_unit")
    ids = access.lab_unit_ids(user)
    if ids is None:
        return qs
    if access.can(user, "view_all_jobs_in_scope"):
        return qs.filter(Q(created_by=user) | Q(lab_unit_id__in=ids))
    return qs.filter(created_by=user)


def recent_jobs(user, limit: int = 100) -> QuerySet[Job]:
    return (
        jobs_visible_to(user)
        .annotate(
            total_items=Count("items"),
            failed_items=Count("items", filter=Q(items__status=JobItem.Status.ERROR)),
        )
        .order_by("-created_at")[:limit]
    )


def job_get(user, job_id) -> Job:
    """A job the user may see, or 404 (a job of another lab unit looks exactly like a missing one)."""
    try:
        return jobs_visible_to(user).get(pk=job_id)
    except (Job.DoesNotExist, ValueError) as exc:
        raise Http404("Job not found.") from exc


def _iso(value):
    return value.isoformat() if value else None


def job_status(job: Job) -> dict:
    """The status document (see DESIGN.md): counters, and every item in the order the files were sent."""
    items = list(job.items.order_by("position"))
    counts = dict.fromkeys(JobItem.Status.values, 0)
    for item in items:
        counts[item.status] += 1
    return {
        "job_id": str(job.pk),
        "kind": job.kind,
        "kind_label": registry.label(job.kind),
        "status": job.status,
        "error": job.error or None,
        "total": len(items),
        "completed": counts[JobItem.Status.COMPLETED],
        "failed": counts[JobItem.Status.ERROR],
        "pending": counts[JobItem.Status.QUEUED] + counts[JobItem.Status.PROCESSING],
        "processing": counts[JobItem.Status.PROCESSING],
        "rejected": job.rejected_count,
        "uploader": job.created_by.username,
        "created_at": _iso(job.created_at),
        "started_at": _iso(job.started_at),
        "finished_at": _iso(job.finished_at),
        "items": [
            {
                "filename": item.filename,
                "status": item.status,
                "error": item.error or None,
                "image_id": item.result.get("image_id"),
                "result": item.result,
                "started_at": _iso(item.started_at),
                "finished_at": _iso(item.finished_at),
            }
            for item in items
        ],
    }
