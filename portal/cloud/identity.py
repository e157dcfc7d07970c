"""Keystone: the service catalog, projects, users, role assignments, application credentials."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timezone

import openstack
from openstack import exceptions as sdk_exc

from .connection import connection_get
from .errors import NotFound, cloud_errors


@dataclass(frozen=True)
class CatalogService:
    type: str
    name: str
    region: str
    url: str


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    enabled: bool
    description: str = ""


@dataclass(frozen=True)
class User:
    id: str
    name: str


@dataclass(frozen=True)
class RoleAssignment:
    user_id: str
    role: str


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
    """The services the portal's credentials see, with their public endpoints."""
    with cloud_errors():
        conn = connection_get(timeout=timeout)
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
    conn = connection_get()
    return CloudEndpoint(
        auth_url=conn.config.auth["auth_url"],
        region_name=conn.config.region_name or "",
        interface=conn.config.config.get("interface") or "public",
        identity_api_version=str(conn.config.config.get("identity_api_version") or "3"),
    )


def _domain_id(conn, domain: str) -> str:
    found = conn.identity.find_domain(domain, ignore_missing=True)
    if found is None:
        raise NotFound(f"Keystone has no domain {domain!r}.")
    return found.id


def project_ensure(*, name: str, description: str, domain: str) -> Project:
    """The project named `name`, created if it does not exist (safe to retry)."""
    with cloud_errors():
        conn = connection_get()
        domain_id = _domain_id(conn, domain)
        found = conn.identity.find_project(name, domain_id=domain_id, ignore_missing=True)
        if found is None:
            found = conn.identity.create_project(name=name, description=description, domain_id=domain_id,
                                                 is_enabled=True)
        return Project(id=found.id, name=found.name, enabled=found.is_enabled, description=found.description or "")


def project_get(*, project_id: str) -> Project:
    with cloud_errors():
        p = connection_get().identity.get_project(project_id)
        return Project(id=p.id, name=p.name, enabled=p.is_enabled, description=p.description or "")


def project_set_enabled(*, project_id: str, enabled: bool) -> None:
    with cloud_errors():
        connection_get().identity.update_project(project_id, is_enabled=enabled)


def service_user_id() -> str:
    """The Keystone user the portal itself acts as."""
    with cloud_errors():
        conn = connection_get()
        return conn.session.get_user_id()


def user_ensure(*, name: str, email: str, password: str, domain: str) -> User:
    """Create the Keystone user, or reset the password of the one that already has this name."""
    with cloud_errors():
        conn = connection_get()
        domain_id = _domain_id(conn, domain)
        found = conn.identity.find_user(name, domain_id=domain_id, ignore_missing=True)
        if found is None:
            found = conn.identity.create_user(name=name, email=email, password=password, domain_id=domain_id,
                                              is_enabled=True, description="Made by the research cloud portal")
        else:
            found = conn.identity.update_user(found, password=password, email=email, is_enabled=True)
        return User(id=found.id, name=found.name)


def user_exists(*, user_id: str) -> bool:
    with cloud_errors():
        return connection_get().identity.find_user(user_id, ignore_missing=True) is not None


def user_delete(*, user_id: str) -> None:
    with cloud_errors():
        connection_get().identity.delete_user(user_id, ignore_missing=True)


def project_delete(*, project_id: str) -> None:
    with cloud_errors():
        connection_get().identity.delete_project(project_id, ignore_missing=True)


def role_grant(*, project_id: str, user_id: str, role: str) -> None:
    with cloud_errors():
        conn = connection_get()
        role_obj = conn.identity.find_role(role, ignore_missing=False)
        conn.identity.assign_project_role_to_user(project_id, user_id, role_obj)


def role_revoke_all(*, project_id: str, user_id: str) -> None:
    """Remove every role the user holds on the project."""
    with cloud_errors():
        conn = connection_get()
        for assignment in conn.identity.role_assignments(scope_project_id=project_id, user_id=user_id):
            conn.identity.unassign_project_role_from_user(project_id, user_id, assignment.role["id"])


def role_assignment_list(*, project_id: str) -> list[RoleAssignment]:
    """Who holds which role on the project, in one call."""
    with cloud_errors():
        conn = connection_get()
        assignments = conn.identity.role_assignments(scope_project_id=project_id, include_names=True)
        return sorted(
            (RoleAssignment(user_id=a.user["id"], role=a.role.get("name") or a.role["id"])
             for a in assignments if a.user),
            key=lambda a: (a.user_id, a.role))


def _keystone_time(value: datetime) -> str:
    """Keystone wants naive UTC with microseconds, e.g. 2027-01-31T12:00:00.000000."""
    return value.astimezone(timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%dT%H:%M:%S.%f")


def app_credential_create(*, user_id: str, username: str, password: str, domain: str, project_id: str,
                          name: str, roles: list[str], expires_at: datetime | None = None) -> AppCredential:
    """Mint an application credential as the user (Keystone lets only users make their own)."""
    admin = connection_get()
    auth = {
        "auth_url": admin.config.auth["auth_url"], "username": username, "password": password,
        "user_domain_name": domain, "project_id": project_id,
    }
    with cloud_errors():
        try:
            return _app_credential_create(admin, auth, user_id, name, roles, expires_at)
        except sdk_exc.HttpException as exc:
            if exc.status_code != 401:
                raise
            # Keystone revokes tokens issued in the second a password changed; one retry suffices.
            time.sleep(1.1)
            return _app_credential_create(admin, auth, user_id, name, roles, expires_at)


def _app_credential_create(admin, auth, user_id, name, roles, expires_at) -> AppCredential:
    conn = openstack.connection.Connection(
        auth=auth, region_name=admin.config.region_name, interface="public", identity_api_version="3",
        api_timeout=admin.config.config.get("api_timeout"))
    try:
        cred = conn.identity.create_application_credential(
            user_id, name=name, expires_at=_keystone_time(expires_at) if expires_at else None,
            # Name the roles: delegating the token's own would include implied roles
            # (reader) that Keystone then fails to find as direct assignments.
            roles=[{"name": role} for role in roles],
            description="Made on the research cloud portal's Credentials page")
    finally:
        conn.close()
    return AppCredential(id=cred.id, name=cred.name, secret=cred.secret, project_id=cred.project_id,
                             expires_at=cred.expires_at)


def app_credential_delete(*, user_id: str, credential_id: str) -> None:
    with cloud_errors():
        conn = connection_get()
        conn.identity.delete(f"/users/{user_id}/application_credentials/{credential_id}")
