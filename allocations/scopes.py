"""Who the portal acts as, for each cloud call.

- `member_scope`: a person's own Keystone identity, scoped to the project of an allocation they
  belong to. Every page, form, launch and action uses it, so Nova, Neutron, Glance and Cinder
  themselves refuse anything outside that project.
- `service_scope`: the portal's service identity (member role in allocation projects, never
  admin) for background work: the mirror sync, the meter, enforcement.

The admin credentials are not reachable from here (see portal.cloud.admin).
"""
from __future__ import annotations

from django.core.exceptions import PermissionDenied

from portal import crypto
from portal.cloud.connection import Identity, Scope, service_identity

from .models import Allocation, AllocationStatus, KeystoneIdentity, Membership

# Statuses whose project exists and may still hold the members' resources.
_PROJECT_STATUSES = (AllocationStatus.ACTIVE, AllocationStatus.EXHAUSTED, AllocationStatus.EXPIRED)


class NoCloudAccess(PermissionDenied):
    """The person cannot act in this allocation's project now; `str()` says why, for the page."""


def person_identity(*, user) -> Identity:
    ks = KeystoneIdentity.objects.filter(user=user).first()
    if ks is None:
        raise NoCloudAccess("Your cloud account is still being set up. Try again in a minute.")
    return Identity(key=f"user:{ks.keystone_user_id}", username=ks.keystone_username,
                    password=crypto.decrypt(ks.encrypted_password))


def allocation_refusal(*, allocation: Allocation, creating: bool) -> str:
    """Why nothing (or nothing new, with `creating`) can be done in the allocation's project."""
    if not allocation.openstack_project_id or allocation.status in (
            AllocationStatus.REQUESTED, AllocationStatus.UNDER_REVIEW, AllocationStatus.APPROVED):
        return f"The allocation “{allocation.title}” has no cloud project yet: it is still being reviewed or set up."
    if allocation.status not in _PROJECT_STATUSES:
        return f"The allocation “{allocation.title}” is {allocation.get_status_display().lower()}."
    if creating and not allocation.is_usable:
        return (f"The allocation “{allocation.title}” is {allocation.get_status_display().lower()}"
                f"{' and disabled' if allocation.disabled_at else ''}: nothing new can be made in it.")
    return ""


def _region_allowed(allocation: Allocation, region: str) -> str:
    if region:
        from .regions import allocation_region_keys
        if region not in allocation_region_keys(allocation=allocation):
            raise NoCloudAccess(f"The allocation “{allocation.title}” is not enabled in the region {region}.")
    return region


def member_scope(*, user, allocation: Allocation, creating: bool = False, region: str = "") -> Scope:
    """The person's identity in the allocation's project; NoCloudAccess if they may not act there.

    `creating`: the call makes something new (a server, volume, IP, group, key), which only an
    active allocation allows. `region`: the region the calls go to ("" the primary); one the
    allocation is not enabled in is refused when `creating` (what is already there stays reachable).
    """
    if user is None or not getattr(user, "is_authenticated", False):
        raise NoCloudAccess("Sign in first.")
    membership = Membership.objects.filter(user=user, allocation=allocation).first()
    if membership is None:
        raise NoCloudAccess("You are not a member of that allocation.")
    if reason := allocation_refusal(allocation=allocation, creating=creating):
        raise NoCloudAccess(reason)
    if not membership.keystone_role_granted:
        raise NoCloudAccess("Your access to this project is still being set up. Try again in a minute.")
    if creating:
        _region_allowed(allocation, region)
    return Scope(identity=person_identity(user=user), project_id=allocation.openstack_project_id, region=region)


def service_scope(*, allocation: Allocation, region: str = "") -> Scope:
    """The portal's service identity in the allocation's project (background work only), in
    `region` ("" the primary)."""
    if not allocation.openstack_project_id:
        raise NoCloudAccess(f"The allocation “{allocation.title}” has no cloud project.")
    return Scope(identity=service_identity(), project_id=allocation.openstack_project_id, region=region)
