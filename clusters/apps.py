from django.apps import AppConfig


class ClustersConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "clusters"

    def ready(self):
        from portal.registry import NavEntry, add_nav_entry

        add_nav_entry(NavEntry("Clusters", "clusters:list", order=40))
