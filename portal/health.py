"""Checks behind /healthz: each answers only whether its component is healthy.

/healthz is open to anyone, so why a check failed goes to the log, never into the response:
exception text can name hosts, users and endpoints.
"""
from __future__ import annotations

import contextlib
import logging

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from .cloud import compute

logger = logging.getLogger(__name__)

CLOUD_CACHE_KEY = "health:cloud"
# A flood of probes (load balancers, monitors, someone's loop) makes one cloud call per this many seconds.
CLOUD_CACHE_SECONDS = 5


def check_database() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception:  # noqa: BLE001 - any failure means unhealthy
        logger.warning("healthz: the database check failed", exc_info=True)
        return False
    return True


def check_redis() -> bool:
    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
    except Exception:  # noqa: BLE001
        logger.warning("healthz: the Redis check failed", exc_info=True)
        return False
    return True


def _ping_cloud() -> bool:
    try:
        compute.compute_ping(timeout=5)
    except Exception:  # noqa: BLE001 - a CloudError, or e.g. no clouds.yaml yet
        logger.warning("healthz: the cloud check failed", exc_info=True)
        return False
    return True


def check_cloud() -> bool:
    """The cloud's answer, remembered for a few seconds (failures too)."""
    try:
        healthy = cache.get(CLOUD_CACHE_KEY)
    except Exception:  # noqa: BLE001 - the cache is Redis, which check_redis reports on
        healthy = None
    if healthy is not None:
        return healthy
    healthy = _ping_cloud()
    with contextlib.suppress(Exception):
        cache.set(CLOUD_CACHE_KEY, healthy, timeout=CLOUD_CACHE_SECONDS)
    return healthy


CHECKS = {"database": check_database, "redis": check_redis, "cloud": check_cloud}
