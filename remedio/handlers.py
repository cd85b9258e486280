"""Job handler for ZIP uploads: one item = one staged archive."""

from jobs.models import JobItem
from remedio.models import Archive
from remedio.services import ingest
from remedio.services.upload import ZIP_UPLOAD
from uploads import services as upload_services

__all__ = ["ZIP_UPLOAD", "archive_item_rejected", "process_archive_item"]


def process_archive_item(item: JobItem) -> dict:
    return ingest.archive_ingest(item=item)


def archive_item_rejected(item: JobItem, message: str) -> None:
    """A refused or abandoned archive leaves nothing behind: its staged copy and anything a lost run stored."""
    upload_services.unstage(item.staged_name)
    for archive in Archive.objects.filter(job_item=item, status=Archive.Status.PROCESSING):
        ingest.archive_purge(archive=archive)
