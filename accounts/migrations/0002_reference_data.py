from django.db import migrations

DISEASES = [("DR", "Diabetic Retinopathy"), ("GLAUCOMA", "Glaucoma"), ("AMD", "Age-related Macular Degeneration")]
AREAS = [("left", "Left eye"), ("right", "Right eye"), ("both", "Both eyes")]


def forwards(apps, schema_editor):
    Disease = apps.get_model("accounts", "Disease")
    Area = apps.get_model("accounts", "Area")
    for code, name in DISEASES:
        Disease.objects.get_or_create(code=code, defaults={"name": name})
    for code, name in AREAS:
        Area.objects.get_or_create(code=code, defaults={"name": name})


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]
    operations = [migrations.RunPython(forwards, migrations.RunPython.noop)]
