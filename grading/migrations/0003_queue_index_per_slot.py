from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("grading", "0002_seed_schemes"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="gradingtask",
            index=models.Index(
                condition=models.Q(("status__in", ["pending", "leased"])),
                fields=["disease", "slot", "-priority", "queued_at", "id"],
                name="grading_task_queue_slot",
            ),
        ),
    ]
