"""The Keystone side of allocations, run by Celery tasks: projects, quotas, users, roles, flavors.

This is the only module that uses the cloud's admin credentials (portal.cloud.admin), and it
passes only ids it read from the portal's own rows. In an allocation's project:
- each member's own Keystone user holds the member role (the portal acts as them there);
- the portal's service user holds the member role (sync, meter, enforcement); never admin;
- private flavors (GPU, large memory) are opened to the project if its kind allows them.
"""
from __future__ import annotations

import logging
import secrets
from fnmatch import fnmatchcase

from django.conf import settings
from django.db import transaction

from portal import crypto, services as portal_services
from portal.cloud import admin, identity
from portal.cloud.errors import CloudError, CloudUnavailable
from portal.cloud.quotas import QuotaLimits
from portal.models import Operation

from . import notifications
from .defaults import quota_limits_for
from .flavor_access import patterns_for
from .models import Allocation, AllocationRegion, AllocationStatus, KeystoneIdentity, Membership

log = logging.getLogger(__name__)


def portal_own_project_ids() -> set[str]:
    """Projects that belong to the portal or the cloud's admin: never an allocation's."""
    return {admin.admin_project_id(), identity.service_project_id()}


def keystone_identity_ensure(*, user) -> KeystoneIdentity:
    """The user's Keystone user, made on first need (and remade if deleted in Keystone)."""
    existing = KeystoneIdentity.objects.filter(user=user).first()
    if existing and admin.user_exists(user_id=existing.keystone_user_id):
        return existing  # leave the password alone: changing it revokes the user's tokens
    password = crypto.decrypt(existing.encrypted_password) if existing else secrets.token_urlsafe(24)
    username = existing.keystone_username if existing else _unclaimed_username(user)
    ks_user = admin.user_ensure(name=username, email=user.email, password=password,
                                domain=settings.PORTAL_KEYSTONE_DOMAIN)
    identity_row, _ = KeystoneIdentity.objects.update_or_create(
        user=user, defaults={"keystone_user_id": ks_user.id, "keystone_username": ks_user.name,
                             "encrypted_password": crypto.encrypt(password)})
    return identity_row


def _unclaimed_username(user) -> str:
    """A Keystone user name for a new person: their email, unless a Keystone user of that name
    already exists (made with the CLI, from LDAP, by someone else): that one is never taken over
    (user_ensure would reset its password), the person gets a name of their own instead."""
    wanted = user.email or user.get_username()
    for name in (wanted, f"{wanted}.portal-{user.pk}", f"{wanted}.portal-{user.pk}-{secrets.token_hex(3)}"):
        if admin.user_find(name=name, domain=settings.PORTAL_KEYSTONE_DOMAIN) is None:
            return name
    raise admin.NotFound("No free Keystone user name for this person; ask the cloud's admins.")


def membership_grant(*, membership: Membership) -> None:
    project_id = membership.allocation.openstack_project_id
    ks = keystone_identity_ensure(user=membership.user)
    admin.role_grant(project_id=project_id, user_id=ks.keystone_user_id, role=settings.PORTAL_MEMBER_ROLE)
    Membership.objects.filter(pk=membership.pk).update(keystone_role_granted=True)


def membership_revoke(*, project_id: str, user_id: int) -> None:
    ks = KeystoneIdentity.objects.filter(user_id=user_id).first()
    if ks:
        admin.role_revoke_all(project_id=project_id, user_id=ks.keystone_user_id)


def service_user_grant(*, project_id: str) -> None:
    """The portal's service user: member in the project (never admin); an admin role an older
    portal gave its user there is taken away."""
    service_user = identity.service_user_id()
    admin.role_grant(project_id=project_id, user_id=service_user, role=settings.PORTAL_MEMBER_ROLE)
    admin.role_revoke(project_id=project_id, user_id=service_user, role="admin")


def allocation_flavor_access_sync(*, allocation: Allocation) -> dict[str, list[str]]:
    """Open the private flavors the allocation's kind allows to its project, close the others."""
    project_id = allocation.openstack_project_id
    patterns = patterns_for(allocation.kind)
    done = {"added": [], "removed": []}
    for flavor, is_public in admin.flavor_list_all():
        if is_public:
            continue
        allowed = any(fnmatchcase(flavor.name, p) for p in patterns)
        has = project_id in admin.flavor_access_projects(flavor_id=flavor.id)
        if allowed and not has:
            admin.flavor_access_add(flavor_id=flavor.id, project_id=project_id)
            done["added"].append(flavor.name)
        elif has and not allowed:
            admin.flavor_access_remove(flavor_id=flavor.id, project_id=project_id)
            done["removed"].append(flavor.name)
    return done


def allocation_provision(*, operation: Operation) -> Allocation:
    """Create (or link) the project, set its quotas, flavors and roles, activate. Safe to re-run."""
    allocation = Allocation.objects.get(pk=int(operation.target.split(":", 1)[1]))
    operation = portal_services.status_row_start(row=operation, step="creating project")
    if allocation.openstack_project_id:
        project = admin.project_get(project_id=allocation.openstack_project_id)
        if not project.enabled:
            admin.project_set_enabled(project_id=project.id, enabled=True)
    else:
        project = admin.project_ensure(name=allocation.openstack_project_name,
                                       description=f"{allocation.title} (PI {allocation.pi.email})",
                                       domain=settings.PORTAL_KEYSTONE_DOMAIN)
    Allocation.objects.filter(pk=allocation.pk).update(openstack_project_id=project.id,
                                                       openstack_project_name=project.name)
    allocation.refresh_from_db()

    operation = portal_services.status_row_progress(row=operation, step="setting quotas", progress=30)
    admin.project_quotas_set(project_id=project.id,
                             limits=quota_limits_for(kind=allocation.kind, storage_gb=allocation.storage_gb))
    operation = portal_services.status_row_progress(row=operation, step="opening flavors", progress=45)
    allocation_flavor_access_sync(allocation=allocation)

    operation = portal_services.status_row_progress(row=operation, step="granting roles", progress=60)
    service_user_grant(project_id=project.id)
    for membership in allocation.memberships.select_related("user"):
        membership_grant(membership=membership)

    with transaction.atomic():
        locked = Allocation.objects.select_for_update().get(pk=allocation.pk)
        if locked.status == AllocationStatus.APPROVED:
            locked.status = AllocationStatus.ACTIVE
            locked.save(update_fields=["status", "updated_at"])
            transaction.on_commit(lambda: notifications.notify_approved(locked))
    portal_services.status_row_succeed(row=operation, result={"project_id": project.id})
    return allocation


def allocation_close_project(*, operation: Operation) -> None:
    """Disable the project and remove every member's role (the service user keeps its own)."""
    allocation = Allocation.objects.get(pk=int(operation.target.split(":", 1)[1]))
    operation = portal_services.status_row_start(row=operation, step="disabling project")
    project_id = allocation.openstack_project_id
    admin.project_instances_quota_set(project_id=project_id, instances=0)
    admin.project_set_enabled(project_id=project_id, enabled=False)
    operation = portal_services.status_row_progress(row=operation, step="removing roles", progress=50)
    for membership in allocation.memberships.all():
        membership_revoke(project_id=project_id, user_id=membership.user_id)
    allocation.memberships.update(keystone_role_granted=False)
    portal_services.status_row_succeed(row=operation)


def allocation_restore_quotas(*, allocation: Allocation) -> None:
    admin.project_quotas_set(project_id=allocation.openstack_project_id,
                             limits=quota_limits_for(kind=allocation.kind, storage_gb=allocation.storage_gb))
    for row in allocation.regions.filter(state=AllocationRegion.State.READY):
        admin.project_quotas_set(project_id=allocation.openstack_project_id, limits=_region_limits(row),
                                 region=row.region_name)


def allocation_stop_launches(*, allocation: Allocation) -> None:
    """Instance quota 0 in every region: no new servers from the portal, the CLI or Horizon."""
    admin.project_instances_quota_set(project_id=allocation.openstack_project_id, instances=0)
    for row in allocation.regions.filter(state=AllocationRegion.State.READY):
        admin.project_instances_quota_set(project_id=allocation.openstack_project_id, instances=0,
                                          region=row.region_name)


def _region_limits(row: AllocationRegion) -> QuotaLimits:
    return QuotaLimits(cores=row.cores, ram_mb=row.ram_gb * 1024, instances=row.instances,
                       floating_ips=row.floating_ips, volume_gb=row.volume_gb)


def allocation_region_provision(*, operation: Operation) -> AllocationRegion | None:
    """Set the quotas of a region an admin enabled for the allocation, then mark it ready. The
    project and its members' roles are Keystone's, shared by every region: nothing else to make.
    Safe to re-run."""
    allocation = Allocation.objects.get(pk=int(operation.target.split(":", 1)[1]))
    name = operation.params.get("region", "")
    row = allocation.regions.filter(region_name=name).first()
    operation = portal_services.status_row_start(row=operation, step=f"setting quotas in {name}")
    if row is None or not allocation.openstack_project_id:  # disabled again, or no project yet
        portal_services.status_row_succeed(row=operation, step="nothing to set up")
        return None
    try:
        admin.project_quotas_set(project_id=allocation.openstack_project_id, limits=_region_limits(row),
                                 region=row.region_name)
    except CloudError as exc:
        if isinstance(exc, CloudUnavailable):
            raise  # the task's retry policy; its last failure marks the row below through give_up
        AllocationRegion.objects.filter(pk=row.pk).update(state=AllocationRegion.State.FAILED, error=str(exc))
        raise
    AllocationRegion.objects.filter(pk=row.pk).update(state=AllocationRegion.State.READY, error="")
    portal_services.status_row_succeed(row=operation, result={"region": name})
    return row


def allocation_project_delete(*, allocation: Allocation) -> None:
    admin.project_delete(project_id=allocation.openstack_project_id)


def keystone_user_delete(*, identity_row: KeystoneIdentity) -> None:
    admin.user_delete(user_id=identity_row.keystone_user_id)


def projects_isolate(*, allocations) -> list[str]:
    """Bring projects made by an older portal under the isolation rule: the portal's users lose
    any admin role there, the service user gets member, members their own member role, and
    flavors follow the kind. Returns a line per project."""
    admin_user_id = admin.admin_user_id()
    report = []
    for allocation in allocations:
        project_id = allocation.openstack_project_id
        removed = []
        for role in ("admin", settings.PORTAL_MEMBER_ROLE, "reader"):
            if admin.role_revoke(project_id=project_id, user_id=admin_user_id, role=role):
                removed.append(f"the cloud admin's {role} role")
        service_user_grant(project_id=project_id)
        for membership in allocation.memberships.select_related("user"):
            membership_grant(membership=membership)
        flavors = allocation_flavor_access_sync(allocation=allocation)
        report.append(f"{allocation.openstack_project_name or project_id}: removed {', '.join(removed) or 'nothing'};"
                      f" flavors opened {flavors['added'] or 'none'}, closed {flavors['removed'] or 'none'}")
    return report
