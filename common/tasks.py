"""The project's task decorator: every task claims its row before working, so it may be delivered twice."""

from celery import shared_task


def idempotent_task(name: str, **options):
    """A Celery task that is acknowledged only after it ran, and redelivered if its worker dies mid-way.

    Only use it for tasks that claim their work with a conditional update and return early when the work is no longer
    theirs: a redelivered message must be harmless.
    """
    return shared_task(name=name, acks_late=True, reject_on_worker_lost=True, ignore_result=True, **options)
