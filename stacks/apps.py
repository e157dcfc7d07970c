from django.apps import AppConfig


class StacksConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "stacks"
    verbose_name = "Stacks"

    def ready(self):
        from portal.registry import NavEntry, add_nav_entry

        add_nav_entry(NavEntry("Stacks", "stacks:list", order=45))
