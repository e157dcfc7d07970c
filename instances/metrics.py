"""Metrics instances reads at scrape time (registered in `portal.registry` by InstancesConfig):
how far the mirror sync lags behind the cloud, in one SQL query per scrape."""
from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Min, OuterRef, Q, Subquery
from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily

from allocations.models import METERED_STATUSES, Allocation

from .models import ProjectSync

log = logging.getLogger(__name__)


def mirror_sync_lag(*, now, threshold_seconds: int) -> dict:
    """Over the projects the sync keeps (allocations that are metered, with a project), in one query:
    how many there are, the oldest last sync, and how many are behind (never synced, or older
    than the threshold)."""
    last = ProjectSync.objects.filter(project_id=OuterRef("openstack_project_id")).values("last_sync_at")[:1]
    behind = Q(last_sync__isnull=True) | Q(last_sync__lt=now - timedelta(seconds=threshold_seconds))
    return (Allocation.objects.filter(status__in=METERED_STATUSES).exclude(openstack_project_id="")
            .annotate(last_sync=Subquery(last))
            .aggregate(projects=Count("pk"), oldest=Min("last_sync"), behind=Count("pk", filter=behind)))


class SyncLagCollector:
    def collect(self):
        threshold = settings.PORTAL_METRICS_SYNC_LAG_SECONDS
        lag = GaugeMetricFamily("portal_sync_lag_seconds",
                                "Seconds since the least recently synced project's mirror was last synced.")
        behind = GaugeMetricFamily("portal_sync_projects_behind",
                                   f"Projects whose mirror is more than PORTAL_METRICS_SYNC_LAG_SECONDS "
                                   f"({threshold} s) behind, or was never synced.")
        projects = GaugeMetricFamily("portal_sync_projects", "Projects whose mirror the sync keeps.")
        now = timezone.now()
        try:
            found = mirror_sync_lag(now=now, threshold_seconds=threshold)
        except Exception:  # the database being down is for /healthz; keep the scrape
            log.warning("metrics: the sync lag query failed", exc_info=True)
            found = None
        if found is not None:
            oldest = found["oldest"]
            lag.add_metric([], max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
            behind.add_metric([], found["behind"])
            projects.add_metric([], found["projects"])
        yield from (lag, behind, projects)
