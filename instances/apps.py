from django.apps import AppConfig


class InstancesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "instances"

    def ready(self):
        from portal import registry

        from . import dashboard, metrics

        registry.add_nav_entry(registry.NavEntry("Instances", "instances:list", order=10))
        registry.add_nav_entry(registry.NavEntry("Volumes", "instances:volumes", order=20))
        registry.add_nav_entry(registry.NavEntry("Network", None, order=30, children=(
            registry.NavEntry("SSH keys", "instances:keys", order=0),
            registry.NavEntry("Security groups", "instances:security_groups", order=1),
            registry.NavEntry("Public IPs", "instances:floating_ips", order=2),
        )))
        for panel in dashboard.PANELS:
            registry.add_dashboard_panel(panel)
        for name, source in dashboard.ACTIVITY_SOURCES.items():
            registry.add_activity_source(name, source)
        registry.add_collector("instances.sync_lag", metrics.SyncLagCollector())
