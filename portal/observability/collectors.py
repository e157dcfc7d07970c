"""Metrics read at scrape time: Celery queue lengths from Redis (the apps register their own
collectors in `portal.registry`, e.g. instances' mirror sync lag).

One round trip (a Redis pipeline) per scrape. A broker that does not answer is logged and leaves
the metric without samples (and `portal_celery_broker_up 0`), so the scrape itself still succeeds.
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
