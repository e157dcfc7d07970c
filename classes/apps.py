from django.apps import AppConfig


class ClassesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "classes"
    verbose_name = "Classes"

    def ready(self):
        from portal.registry import NavEntry, add_nav_entry

        add_nav_entry(NavEntry("Classes", "classes:list", order=50))
