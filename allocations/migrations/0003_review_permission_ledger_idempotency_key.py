from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("allocations", "0002_default_rates"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="allocation",
            options={"ordering": ["-created_at"], "permissions": [
                ("review_allocation", "Can review allocations (approve, reject, extend, add SUs, close)")]},
        ),
        migrations.AddField(
            model_name="ledgerentry",
            name="idempotency_key",
            field=models.CharField(blank=True, editable=False, max_length=64, null=True, unique=True),
        ),
    ]
