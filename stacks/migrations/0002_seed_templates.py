from django.db import migrations


def seed(apps, schema_editor):
    from stacks.seeds import templates_seed

    templates_seed(apps.get_model("stacks", "StackTemplate"))


class Migration(migrations.Migration):
    dependencies = [("stacks", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
