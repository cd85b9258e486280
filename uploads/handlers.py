"""Job handlers for image uploads: one item = one staged file."""

from django.core.files.storage import storages

from jobs.models import JobItem
from jobs.registry import ItemRejected
from uploads import services
from uploads.models import Image

DIRECT_UPLOAD = "direct_upload"
MSG_STAGED_MISSING = (
    "The uploaded file is no longer available on the server (it was cleaned up before it could be processed). "
    "Please upload it again."
)


def process_image_item(item: JobItem) -> dict:
    """Store the staged file of ``item``. Running an item again (its worker died after storing) finds the image it
    already produced instead of calling it a duplicate of itself."""
    job = item.job
    already = Image.objects.filter(job_item=item).values_list("pk", flat=True).first()
    if already is not None:
        services.unstage(item.staged_name)
        return {"image_id": str(already)}
    try:
        with storages["staging"].open(item.staged_name, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ItemRejected(MSG_STAGED_MISSING) from None
    image = services.image_store(
        data=data,
        original_name=item.filename,
        params=job.params,
        uploaded_by=job.created_by,
        job_item=item,
        client_ip=job.client_ip,
        user_agent=job.user_agent,
        source=job.params.get("source", "direct"),
    )
    services.unstage(item.staged_name)
    return {"image_id": str(image.pk)}


def image_item_rejected(item: JobItem, message: str) -> None:
    """A refused file leaves nothing behind and gives its quota unit back."""
    services.unstage(item.staged_name)
    if item.job.params.get("counts_quota"):
        services.quota_refund(user_id=item.job.created_by_id)
