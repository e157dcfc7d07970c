from django.db import migrations


def seed(apps, schema_editor):
    from classes.seeds import TEMPLATES

    ClassTemplate = apps.get_model("classes", "ClassTemplate")
    for fields in TEMPLATES:
        ClassTemplate.objects.update_or_create(name=fields["name"], defaults={**fields, "builtin": True})


class Migration(migrations.Migration):
    dependencies = [("classes", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
