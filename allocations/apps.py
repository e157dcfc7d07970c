from django.apps import AppConfig


class AllocationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "allocations"

    def ready(self):
        from . import signals  # noqa: F401 - connects the invitation binding
