"""Metrics read at scrape time: Celery queue lengths from Redis, mirror sync lag from the database.

Each is one round trip (a Redis pipeline; one SQL query) per scrape. A source that does not
answer is logged and leaves its metric without samples (and `portal_celery_broker_up 0`), so the
scrape itself still succeeds.
"""
from __future__ import annotations

import logging

from django.conf import settings
from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger(__name__)

# kombu's Redis transport keeps a queue's messages of priority p in the list "<queue><sep><p>"
# (p = 0: the queue's own name).
KOMBU_PRIORITY_STEPS = (0, 3, 6, 9)
KOMBU_SEP = "\x06\x16"


def celery_queue_names(app) -> list[str]:
    """The queues the configuration names: the default, the declared ones, and the routes' targets."""
    conf = app.conf
    names = {conf.task_default_queue}
    queues = conf.task_queues or ()
    names |= {getattr(q, "name", q) for q in (queues.values() if isinstance(queues, dict) else queues)}
    routes = conf.task_routes or ()
    for table in ([routes] if isinstance(routes, dict) else routes):
        if isinstance(table, dict):
            names |= {r["queue"] for r in table.values() if isinstance(r, dict) and r.get("queue")}
    return sorted(n for n in names if isinstance(n, str) and n)


def celery_queue_lengths() -> dict[str, int]:
    import redis

    from portal.celery import app

    options = app.conf.broker_transport_options or {}
    steps = options.get("priority_steps") or KOMBU_PRIORITY_STEPS
    sep, prefix = options.get("sep", KOMBU_SEP), options.get("global_keyprefix", "")
    names = celery_queue_names(app)
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        pipe = client.pipeline(transaction=False)
        for name in names:
            for step in steps:
                pipe.llen(f"{prefix}{name}{sep}{step}" if step else f"{prefix}{name}")
        lengths = pipe.execute()
    finally:
        client.close()
    return {name: sum(lengths[i * len(steps):(i + 1) * len(steps)]) for i, name in enumerate(names)}


class CeleryQueueCollector:
    def collect(self):
        lengths = GaugeMetricFamily("portal_celery_queue_length",
                                    "Messages waiting in each Celery queue (Redis list lengths at scrape time).",
                                    labels=["queue"])
        up = GaugeMetricFamily("portal_celery_broker_up", "1 if the Celery broker (Redis) answered this scrape.")
        try:
            found = celery_queue_lengths()
        except Exception:  # the broker being down is what this reports
            log.warning("metrics: the Celery broker did not answer", exc_info=True)
            found = None
        for name, length in (found or {}).items():
            lengths.add_metric([name], length)
        up.add_metric([], 0 if found is None else 1)
        yield lengths
        yield up


def mirror_sync_lag(*, now, threshold_seconds: int) -> dict:
    """Over the projects the sync keeps (allocations that are metered, with a project), in one query:
    how many there are, the oldest last sync, and how many are behind (never synced, or older
    than the threshold)."""
    from datetime import timedelta

    from django.db.models import Count, Min, OuterRef, Q, Subquery

    from allocations.models import METERED_STATUSES, Allocation
    from instances.models import ProjectSync

    last = ProjectSync.objects.filter(project_id=OuterRef("openstack_project_id")).values("last_sync_at")[:1]
    behind = Q(last_sync__isnull=True) | Q(last_sync__lt=now - timedelta(seconds=threshold_seconds))
    return (Allocation.objects.filter(status__in=METERED_STATUSES).exclude(openstack_project_id="")
            .annotate(last_sync=Subquery(last))
            .aggregate(projects=Count("pk"), oldest=Min("last_sync"), behind=Count("pk", filter=behind)))


class SyncLagCollector:
    def collect(self):
        from django.utils import timezone

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
