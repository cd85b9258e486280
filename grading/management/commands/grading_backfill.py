from django.core.management.base import BaseCommand
from django.db.models import Exists, OuterRef

from grading.models import GradingTask
from grading.services import grading_state_update, grading_tasks_create_bulk
from uploads.models import Image


class Command(BaseCommand):
    help = (
        "Create the grading tasks of images that have none (uploaded before their disease had an active scheme, or "
        "whose task creation failed). Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--source",
            action="append",
            choices=Image.Source.values,
            help="Image sources to include (repeatable; default: direct and pregraded uploads). ZIP images enter "
            "grading when their encounter is verified.",
        )
        parser.add_argument("--batch-size", type=int, default=1000)

    def handle(self, *args, source, batch_size, **options):
        sources = source or [Image.Source.DIRECT, Image.Source.PREGRADED]
        ids = list(
            Image.objects.filter(source__in=sources)
            .exclude(Exists(GradingTask.objects.filter(image_id=OuterRef("pk"))))
            .order_by("uploaded_at", "id")
            .values_list("pk", flat=True)
        )
        created = 0
        for start in range(0, len(ids), batch_size):
            chunk = ids[start : start + batch_size]
            images = list(Image.objects.filter(pk__in=chunk).only("id", "lab_unit_id", "disease_id", "uploaded_at"))
            created += grading_tasks_create_bulk(images=images)["created"]
            grading_state_update(chunk)
        self.stdout.write(
            self.style.SUCCESS(f"{created} grading task(s) created for {len(ids)} image(s) without tasks.")
        )
