from decimal import Decimal

from django.db import migrations

RATES = [
    ("m3", "CPU", Decimal("1")),
    ("r3", "Large memory", Decimal("2")),
    ("g3", "GPU (NVIDIA A100 vGPU)", Decimal("2")),
]


def add_defaults(apps, schema_editor):
    FlavorFamilyRate = apps.get_model("allocations", "FlavorFamilyRate")
    for family, description, multiplier in RATES:
        FlavorFamilyRate.objects.get_or_create(family=family, defaults={
            "description": description, "multiplier": multiplier})
    Cloud = apps.get_model("allocations", "Cloud")
    if not Cloud.objects.exists():
        from django.conf import settings
        Cloud.objects.create(name="Primary", os_cloud=settings.OS_CLOUD, is_primary=True)


class Migration(migrations.Migration):
    dependencies = [("allocations", "0001_initial")]
    operations = [migrations.RunPython(add_defaults, migrations.RunPython.noop)]
