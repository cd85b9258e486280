"""Seed the default grade schemes (GRADING.md). Idempotent: a scheme or option that exists is left as it is, so
admins' edits survive."""

from django.db import migrations

from grading.seed_data import seed


def forwards(apps, schema_editor):
    seed(apps.get_model("accounts", "Disease"), apps.get_model("grading", "GradeScheme"), apps.get_model("grading", "GradeOption"))


class Migration(migrations.Migration):
    dependencies = [("grading", "0001_initial"), ("accounts", "0002_reference_data")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
