"""Keystone as the portal's service user and as people: the catalog, application credentials.

Projects, users and role grants need the admin and live in `portal.cloud.admin`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from openstack import exceptions as sdk_exc

from .connection import Scope, _cloud_settings, connection_for, service_home_scope
from .errors import cloud_errors


@dataclass(frozen=True)
class CatalogService:
    type: str
    name: str
    region: str
    url: str


@dataclass(frozen=True)
class AppCredential:
    id: str
    name: str
    secret: str
    project_id: str
    expires_at: str | None


@dataclass(frozen=True)
class CloudEndpoint:
    """What a CLI user needs to reach the cloud: the public Keystone URL and the region."""

    auth_url: str
    region_name: str
    interface: str
    identity_api_version: str


def catalog_list(*, timeout: float | None = None) -> list[CatalogService]:
    """The services the portal's service identity sees, with their public endpoints."""
    with cloud_errors():
        conn = connection_for(service_home_scope(), timeout=timeout)
        access = conn.session.auth.get_access(conn.session)
        services = []
        for entry in access.service_catalog.catalog:
            for endpoint in entry.get("endpoints", []):
                if endpoint.get("interface") == "public":
                    services.append(CatalogService(
                        type=entry.get("type", ""), name=entry.get("name", ""),
                        region=endpoint.get("region_id") or endpoint.get("region") or "",
                        url=endpoint.get("url", ""),
                    ))
        return sorted(services, key=lambda s: (s.type, s.region))


def cloud_endpoint_get() -> CloudEndpoint:
    from django.conf import settings

    cloud = _cloud_settings(settings.PORTAL_SERVICE_CLOUD)
    return CloudEndpoint(auth_url=cloud["auth_url"], region_name=cloud["region_name"] or "",
                         interface=cloud["interface"], identity_api_version="3")


def service_user_id() -> str:
    """The Keystone user id of the portal's service identity."""
    with cloud_errors():
        return connection_for(service_home_scope()).current_user_id


def service_project_id() -> str:
    """The service identity's own project (holds no allocation's resources)."""
    with cloud_errors():
        return service_home_scope().project_id


def _keystone_time(value: datetime) -> str:
    """Keystone wants naive UTC with microseconds, e.g. 2027-01-31T12:00:00.000000."""
    return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S.%f")


def app_credential_create(*, scope: Scope, name: str, roles: list[str],
                          expires_at: datetime | None = None) -> AppCredential:
    """Mint an application credential as the person, in the scope's project (Keystone lets only
    users make their own)."""
    with cloud_errors():
        try:
            return _app_credential_create(scope, name, roles, expires_at)
        except sdk_exc.HttpException as exc:
            if exc.status_code != 401:
                raise
            # Keystone revokes tokens issued in the second a password changed; one retry suffices.
            time.sleep(1.1)
            from .connection import connection_cache_clear

            connection_cache_clear()
            return _app_credential_create(scope, name, roles, expires_at)


def _app_credential_create(scope, name, roles, expires_at) -> AppCredential:
    conn = connection_for(scope)
    cred = conn.identity.create_application_credential(
        conn.current_user_id, name=name, expires_at=_keystone_time(expires_at) if expires_at else None,
        # Name the roles: delegating the token's own would include implied roles
        # (reader) that Keystone then fails to find as direct assignments.
        roles=[{"name": role} for role in roles],
        description="Made on the research cloud portal's Credentials page")
    return AppCredential(id=cred.id, name=cred.name, secret=cred.secret, project_id=cred.project_id,
                         expires_at=cred.expires_at)


def app_credential_delete(*, scope: Scope, credential_id: str) -> None:
    with cloud_errors():
        conn = connection_for(scope)
        conn.identity.delete_application_credential(conn.current_user_id, credential_id, ignore_missing=True)
