"""The Keystone side of allocations, run by Celery tasks: projects, quotas, users, roles."""
from __future__ import annotations

import secrets

from django.conf import settings
from django.db import transaction

from portal import crypto
from portal import services as portal_services
from portal.cloud import identity, quotas
from portal.models import Operation

from . import notifications
from .defaults import quota_limits_for
from .models import Allocation, AllocationStatus, KeystoneIdentity, Membership


def keystone_identity_ensure(*, user) -> KeystoneIdentity:
    """The user's Keystone user, made on first need (and remade if deleted in Keystone)."""
    existing = KeystoneIdentity.objects.filter(user=user).first()
    if existing and identity.user_exists(user_id=existing.keystone_user_id):
        return existing  # leave the password alone: changing it revokes the user's tokens
    password = crypto.decrypt(existing.encrypted_password) if existing else secrets.token_urlsafe(24)
    username = existing.keystone_username if existing else (user.email or user.get_username())
    ks_user = identity.user_ensure(name=username, email=user.email, password=password,
                                   domain=settings.PORTAL_KEYSTONE_DOMAIN)
    identity_row, _ = KeystoneIdentity.objects.update_or_create(
        user=user, defaults={"keystone_user_id": ks_user.id, "keystone_username": ks_user.name,
                             "encrypted_password": crypto.encrypt(password)})
    return identity_row


def membership_grant(*, membership: Membership) -> None:
    project_id = membership.allocation.openstack_project_id
    ks = keystone_identity_ensure(user=membership.user)
    identity.role_grant(project_id=project_id, user_id=ks.keystone_user_id, role=settings.PORTAL_MEMBER_ROLE)
    Membership.objects.filter(pk=membership.pk).update(keystone_role_granted=True)


def membership_revoke(*, project_id: str, user_id: int) -> None:
    ks = KeystoneIdentity.objects.filter(user_id=user_id).first()
    if ks:
        identity.role_revoke_all(project_id=project_id, user_id=ks.keystone_user_id)


def allocation_provision(*, operation: Operation) -> Allocation:
    """Create (or link) the project, set its quotas, grant roles, activate. Safe to re-run."""
    allocation = Allocation.objects.get(pk=int(operation.target.split(":", 1)[1]))
    operation = portal_services.status_row_start(row=operation, step="creating project")
    if allocation.openstack_project_id:
        project = identity.project_get(project_id=allocation.openstack_project_id)
        if not project.enabled:
            identity.project_set_enabled(project_id=project.id, enabled=True)
    else:
        project = identity.project_ensure(name=allocation.openstack_project_name,
                                          description=f"{allocation.title} (PI {allocation.pi.email})",
                                          domain=settings.PORTAL_KEYSTONE_DOMAIN)
    Allocation.objects.filter(pk=allocation.pk).update(openstack_project_id=project.id,
                                                       openstack_project_name=project.name)
    allocation.refresh_from_db()

    operation = portal_services.status_row_progress(row=operation, step="setting quotas", progress=30)
    quotas.project_quotas_set(project_id=project.id,
                              limits=quota_limits_for(kind=allocation.kind, storage_gb=allocation.storage_gb))

    operation = portal_services.status_row_progress(row=operation, step="granting roles", progress=60)
    # The portal acts in the project with its own service user, so that user needs roles there too.
    service_user = identity.service_user_id()
    for role in ("admin", settings.PORTAL_MEMBER_ROLE):
        identity.role_grant(project_id=project.id, user_id=service_user, role=role)
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
    quotas.project_instances_quota_set(project_id=project_id, instances=0)
    identity.project_set_enabled(project_id=project_id, enabled=False)
    operation = portal_services.status_row_progress(row=operation, step="removing roles", progress=50)
    for membership in allocation.memberships.all():
        membership_revoke(project_id=project_id, user_id=membership.user_id)
    allocation.memberships.update(keystone_role_granted=False)
    portal_services.status_row_succeed(row=operation)


def allocation_restore_quotas(*, allocation: Allocation) -> None:
    quotas.project_quotas_set(project_id=allocation.openstack_project_id,
                              limits=quota_limits_for(kind=allocation.kind, storage_gb=allocation.storage_gb))
