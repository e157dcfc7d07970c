from django.db import migrations


def seed(apps, schema_editor):
    from classes.seeds import templates_seed

    templates_seed(apps.get_model("classes", "ClassTemplate"))


class Migration(migrations.Migration):
    dependencies = [("classes", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
