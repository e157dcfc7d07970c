"""Connections to the cloud, cached per (cloud, project) and reused across calls."""
from __future__ import annotations

import threading

import openstack
from django.conf import settings
from openstack import config as os_config

_lock = threading.Lock()
_cache: dict[tuple, openstack.connection.Connection] = {}


def _config():
    return os_config.OpenStackConfig(config_files=[settings.OS_CLIENT_CONFIG_FILE])


def connection_get(*, project_id: str | None = None, cloud: str | None = None,
                   timeout: float | None = None) -> openstack.connection.Connection:
    """A connection with the portal's service credentials, scoped to `project_id` if given.

    Connections keep their token and HTTP pool, so they are cached per (cloud, project).
    """
    cloud = cloud or settings.OS_CLOUD
    timeout = timeout or settings.PORTAL_CLOUD_TIMEOUT
    key = (settings.OS_CLIENT_CONFIG_FILE, cloud, project_id, timeout)
    with _lock:
        conn = _cache.get(key)
        if conn is None:
            options = {"api_timeout": timeout}
            if project_id:
                options["auth"] = {"project_id": project_id, "project_name": None,
                                   "project_domain_id": None, "project_domain_name": None}
            region = _config().get_one(cloud=cloud, **options)
            conn = openstack.connection.Connection(config=region)
            _cache[key] = conn
        return conn


def connection_cache_clear() -> None:
    with _lock:
        for conn in _cache.values():
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing is best effort
                pass
        _cache.clear()
