"""openstacksdk connections for tests to look at the real local cloud the way its users do.

The portal itself never holds these: it acts through portal.cloud with scoped identities.
    connection_get()                 the cloud admin, in the admin project (setting up, checking)
    connection_get(project_id=pid)   the portal's service user scoped to the project (a member
                                     there, as provisioning made it): what the project's own CLI sees
"""
from __future__ import annotations

import openstack
from django.conf import settings
from openstack import config as os_config

_cache: dict = {}


def connection_get(*, project_id: str | None = None) -> openstack.connection.Connection:
    key = project_id or "admin"
    if key not in _cache:
        cfg = os_config.OpenStackConfig(config_files=[settings.OS_CLIENT_CONFIG_FILE])
        if project_id:
            region = cfg.get_one(cloud=settings.PORTAL_SERVICE_CLOUD,
                                 auth={"project_id": project_id, "project_name": None,
                                       "project_domain_id": None, "project_domain_name": None})
        else:
            region = cfg.get_one(cloud=settings.OS_CLOUD)
        _cache[key] = openstack.connection.Connection(config=region)
    return _cache[key]


def connection_as(*, username: str, password: str, project_id: str) -> openstack.connection.Connection:
    """A person's own connection (e.g. from the credentials they downloaded), not cached."""
    cfg = os_config.OpenStackConfig(config_files=[settings.OS_CLIENT_CONFIG_FILE]).get_one(
        cloud=settings.PORTAL_SERVICE_CLOUD)
    return openstack.connection.Connection(
        auth={"auth_url": cfg.auth["auth_url"], "username": username, "password": password,
              "user_domain_name": "Default", "project_id": project_id},
        region_name=cfg.region_name, interface="public", identity_api_version="3")


def connection_cache_clear() -> None:
    for conn in _cache.values():
        try:
            conn.close()
        except Exception:  # noqa: BLE001
            pass
    _cache.clear()
