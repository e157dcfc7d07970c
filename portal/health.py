"""Checks behind /healthz: each returns None when healthy, else a short reason."""
from __future__ import annotations

import redis
from django.conf import settings
from django.db import connection

from .cloud import compute
from .cloud.errors import CloudError


def check_database() -> str | None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means unhealthy
        return f"database: {exc.__class__.__name__}"
    return None


def check_redis() -> str | None:
    try:
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL, socket_timeout=2, socket_connect_timeout=2)
        client.ping()
    except Exception as exc:  # noqa: BLE001
        return f"redis: {exc.__class__.__name__}"
    return None


def check_cloud() -> str | None:
    try:
        compute.compute_ping(timeout=5)
    except CloudError as exc:
        return f"cloud: {exc}"
    except Exception as exc:  # noqa: BLE001 - e.g. no clouds.yaml yet
        return f"cloud: {exc.__class__.__name__}: {exc}"
    return None


CHECKS = {"database": check_database, "redis": check_redis, "cloud": check_cloud}
