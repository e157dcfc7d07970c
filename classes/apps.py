from django.apps import AppConfig


class ClassesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "classes"
    verbose_name = "Classes"

    def ready(self):
        from portal.registry import NavEntry, add_nav_entry

        from . import signals  # noqa: F401 - seats bind on sign-in and on a confirmed address

        add_nav_entry(NavEntry("Classes", "classes:list", order=50))
