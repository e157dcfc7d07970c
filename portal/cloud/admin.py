"""The only calls the portal makes with the cloud's admin credentials.

Projects, Keystone users, role grants, quotas and flavor access: what provisioning an
allocation needs and nothing else. Only `allocations.provisioning` imports this module, and it
passes ids it read from its own rows, never ids taken from a request
(tests/portal/test_isolation_rules.py checks both).
"""
from __future__ import annotations

from dataclasses import dataclass

from .compute import Flavor, _flavor
from .connection import admin_connection
from .errors import NotFound, cloud_errors
from .quotas import QuotaLimits


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


def _domain_id(conn, domain: str) -> str:
    found = conn.identity.find_domain(domain, ignore_missing=True)
    if found is None:
        raise NotFound(f"Keystone has no domain {domain!r}.")
    return found.id


def _project(p) -> Project:
    return Project(id=p.id, name=p.name, enabled=p.is_enabled, description=p.description or "")


def admin_project_id() -> str:
    """The project the admin credentials are scoped to (never an allocation's)."""
    with cloud_errors():
        return admin_connection().current_project_id


def admin_user_id() -> str:
    """The Keystone user of the admin credentials (an older portal also acted in projects as it)."""
    with cloud_errors():
        return admin_connection().current_user_id


def project_ensure(*, name: str, description: str, domain: str) -> Project:
    """The project named `name`, created if it does not exist (safe to retry)."""
    with cloud_errors():
        conn = admin_connection()
        domain_id = _domain_id(conn, domain)
        found = conn.identity.find_project(name, domain_id=domain_id, ignore_missing=True)
        if found is None:
            found = conn.identity.create_project(name=name, description=description, domain_id=domain_id,
                                                 is_enabled=True)
        return _project(found)


def project_get(*, project_id: str) -> Project:
    with cloud_errors():
        return _project(admin_connection().identity.get_project(project_id))


def project_set_enabled(*, project_id: str, enabled: bool) -> None:
    with cloud_errors():
        admin_connection().identity.update_project(project_id, is_enabled=enabled)


def project_delete(*, project_id: str) -> None:
    with cloud_errors():
        admin_connection().identity.delete_project(project_id, ignore_missing=True)


def user_ensure(*, name: str, email: str, password: str, domain: str) -> User:
    """Create the Keystone user, or reset the password of the one that already has this name."""
    with cloud_errors():
        conn = admin_connection()
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
        return admin_connection().identity.find_user(user_id, ignore_missing=True) is not None


def user_find(*, name: str, domain: str) -> User | None:
    with cloud_errors():
        conn = admin_connection()
        found = conn.identity.find_user(name, domain_id=_domain_id(conn, domain), ignore_missing=True)
        return User(id=found.id, name=found.name) if found else None


def user_delete(*, user_id: str) -> None:
    with cloud_errors():
        admin_connection().identity.delete_user(user_id, ignore_missing=True)


def role_grant(*, project_id: str, user_id: str, role: str) -> None:
    with cloud_errors():
        conn = admin_connection()
        role_obj = conn.identity.find_role(role, ignore_missing=False)
        conn.identity.assign_project_role_to_user(project_id, user_id, role_obj)


def role_revoke(*, project_id: str, user_id: str, role: str) -> bool:
    """Remove one role; True if the user held it."""
    with cloud_errors():
        conn = admin_connection()
        role_obj = conn.identity.find_role(role, ignore_missing=True)
        if role_obj is None:
            return False
        held = any(a.role["id"] == role_obj.id for a in
                   conn.identity.role_assignments(scope_project_id=project_id, user_id=user_id))
        if held:
            conn.identity.unassign_project_role_from_user(project_id, user_id, role_obj)
        return held


def role_revoke_all(*, project_id: str, user_id: str) -> None:
    """Remove every role the user holds on the project."""
    with cloud_errors():
        conn = admin_connection()
        for assignment in conn.identity.role_assignments(scope_project_id=project_id, user_id=user_id):
            conn.identity.unassign_project_role_from_user(project_id, user_id, assignment.role["id"])


def role_assignment_list(*, project_id: str) -> list[RoleAssignment]:
    """Who holds which role on the project, in one call."""
    with cloud_errors():
        conn = admin_connection()
        assignments = conn.identity.role_assignments(scope_project_id=project_id, include_names=True)
        return sorted(
            (RoleAssignment(user_id=a.user["id"], role=a.role.get("name") or a.role["id"])
             for a in assignments if a.user),
            key=lambda a: (a.user_id, a.role))


def project_quotas_set(*, project_id: str, limits: QuotaLimits, region: str = "") -> None:
    """The project's compute, volume and public IP quotas in `region` ("": the primary)."""
    with cloud_errors():
        conn = admin_connection(region=region)
        conn.compute.update_quota_set(project_id, cores=limits.cores, ram=limits.ram_mb,
                                      instances=limits.instances)
        conn.block_storage.update_quota_set(project_id, gigabytes=limits.volume_gb, volumes=limits.volumes,
                                            snapshots=limits.snapshots)
        conn.network.update_quota(project_id, floating_ips=limits.floating_ips)


def project_instances_quota_set(*, project_id: str, instances: int, region: str = "") -> None:
    """Only the instance count: 0 stops new servers from any client (portal, CLI, Horizon)."""
    with cloud_errors():
        # force: Nova otherwise refuses a limit below what the project already runs.
        admin_connection(region=region).compute.update_quota_set(project_id, instances=instances, force=True)


def flavor_list_all() -> list[tuple[Flavor, bool]]:
    """Every flavor, public and private, with whether it is public."""
    with cloud_errors():
        conn = admin_connection()
        return [(_flavor(f), bool(f.is_public)) for f in conn.compute.flavors(details=True, is_public=None)]


def flavor_access_projects(*, flavor_id: str) -> set[str]:
    with cloud_errors():
        return {(a.get("tenant_id") if isinstance(a, dict) else a.tenant_id) for a in
                admin_connection().compute.get_flavor_access(flavor_id)}


def flavor_access_add(*, flavor_id: str, project_id: str) -> None:
    with cloud_errors():
        admin_connection().compute.flavor_add_tenant_access(flavor_id, project_id)


def flavor_access_remove(*, flavor_id: str, project_id: str) -> None:
    with cloud_errors():
        admin_connection().compute.flavor_remove_tenant_access(flavor_id, project_id)
