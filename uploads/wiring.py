"""What the dashboard plugs into at start-up (called from UploadsConfig.ready): its menu entries and the audit
record of every stored upload."""

from django.db.models.signals import post_save

from accounts import navigation


def ready() -> None:
    from uploads.models import Image

    navigation.register(
        navigation.Entry(
            section="upload",
            label="Direct Upload Dashboard",
            url_name="uploads:dashboard",
            action="view_images",
            icon="bi-grid-3x3-gap",
            order=20,
        )
    )
    navigation.register(
        navigation.Entry(
            section="home",
            label="Image dashboard",
            url_name="uploads:dashboard",
            action="view_images",
            icon="bi-grid-3x3-gap",
            text="Find, view, edit and export the images of your lab units.",
            button="Open dashboard",
            order=20,
        )
    )
    post_save.connect(image_saved, sender=Image, dispatch_uid="uploads.audit.image_uploaded")


def image_saved(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    """Every stored image (direct, pre-graded, ZIP) is recorded in the audit trail, in the transaction that stores it,
    with the uploader, IP address and user agent of the upload request."""
    if not created or raw:
        return
    from uploads import audit

    job_item_field = sender._meta.get_field("job_item")
    job_id = instance.job_item.job_id if instance.job_item_id and job_item_field.is_cached(instance) else None
    audit.record(
        audit.Entry(
            action=audit.Action.IMAGE_UPLOADED,
            object_type="image",
            object_id=str(instance.pk),
            lab_unit_id=instance.lab_unit_id,
            summary=f"Uploaded {instance.original_name} ({instance.get_source_display().lower()})",
            details={
                "file_name": instance.original_name,
                "md5": instance.md5,
                "size": instance.size,
                "source": instance.source,
                "is_pregraded": instance.is_pregraded,
                "job_id": job_id,
                "job_item_id": instance.job_item_id,
            },
        ),
        audit.Origin(actor=instance.uploaded_by, ip=instance.client_ip, user_agent=instance.user_agent),
    )
