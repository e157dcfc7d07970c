"""Reads about allocations, always from the point of view of a user (membership is the gate)."""
from __future__ import annotations

from django.db.models import QuerySet
from django.http import Http404

from .models import Allocation, AllocationStatus, Membership


def allocation_list_for_user(*, user) -> QuerySet[Allocation]:
    """Every allocation the user belongs to, in any status, PI's first."""
    return (Allocation.objects.filter(memberships__user=user)
            .select_related("pi").order_by("-created_at").distinct())


def allocation_list_usable_for_user(*, user) -> QuerySet[Allocation]:
    """Allocations the user may launch into now: active, provisioned, not disabled."""
    return allocation_list_for_user(user=user).filter(
        status=AllocationStatus.ACTIVE, disabled_at__isnull=True).exclude(openstack_project_id="")


def allocation_get_for_user(*, user, pk: int) -> Allocation:
    """The allocation, or 404 if the user is not a member (so its existence does not leak)."""
    try:
        return allocation_list_for_user(user=user).get(pk=pk)
    except Allocation.DoesNotExist:
        raise Http404("No such allocation.")


def allocation_get_for_project(*, user, project_id: str) -> Allocation:
    """The allocation mapped to an OpenStack project, or 404 if the user is not a member."""
    allocation = allocation_list_for_user(user=user).filter(openstack_project_id=project_id).first()
    if allocation is None or not project_id:
        raise Http404("No such project.")
    return allocation


def membership_get(*, user, allocation: Allocation) -> Membership | None:
    return Membership.objects.filter(user=user, allocation=allocation).first()
