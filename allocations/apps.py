from django.apps import AppConfig


class AllocationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "allocations"

    def ready(self):
        from portal import registry

        from . import dashboard, metrics, signals  # noqa: F401 - signals connects the invitation binding

        registry.add_nav_entry(registry.NavEntry("Allocations", "allocations:list", order=60))
        registry.add_nav_entry(registry.NavEntry("Credentials", "allocations:credentials", order=70))
        for panel in dashboard.PANELS:
            registry.add_dashboard_panel(panel)
        for name, source in dashboard.ACTIVITY_SOURCES.items():
            registry.add_activity_source(name, source)
        registry.add_task_observer(metrics.METER_TASK, metrics.meter_run_observed)
