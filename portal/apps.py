from django.apps import AppConfig


class PortalConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from . import registry

        registry.add_nav_entry(registry.NavEntry("Dashboard", "dashboard", order=0))
