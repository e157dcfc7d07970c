from django.apps import AppConfig


class PortalConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "portal"
    verbose_name = "Portal"

    def ready(self):
        from . import registry

        registry.add_nav_entry(registry.NavEntry("Dashboard", "dashboard", order=0))
        # Classes (issue 11) have no app yet: the menu shows the section disabled until its app
        # registers the entry itself.
        registry.add_nav_entry(registry.NavEntry("Classes", None, order=50))
