"""Thin tasks: load rows, call provisioning/metering/enforcement, fail the status row on error."""
from celery import shared_task
from django.utils import timezone

from portal import services as portal_services
from portal.cloud.errors import CloudError
from portal.models import Operation

from . import enforcement, metering, provisioning
from .models import Allocation, Membership

CLOUD_RETRY = dict(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=5)


def _run_operation(operation_id: int, work) -> None:
    operation = Operation.objects.get(pk=operation_id)
    if operation.is_final:
        return
    try:
        work(operation=operation)
    except CloudError as exc:
        operation.refresh_from_db()
        portal_services.status_row_fail(row=operation, error=str(exc))
        raise


@shared_task(**CLOUD_RETRY)
def provision_allocation(operation_id: int) -> None:
    _run_operation(operation_id, provisioning.allocation_provision)


@shared_task(**CLOUD_RETRY)
def close_allocation(operation_id: int) -> None:
    _run_operation(operation_id, provisioning.allocation_close_project)


@shared_task(**CLOUD_RETRY)
def grant_membership(membership_id: int) -> None:
    membership = Membership.objects.select_related("allocation", "user").filter(pk=membership_id).first()
    if membership and membership.allocation.openstack_project_id:
        provisioning.membership_grant(membership=membership)


@shared_task(**CLOUD_RETRY)
def revoke_membership(project_id: str, user_id: int) -> None:
    provisioning.membership_revoke(project_id=project_id, user_id=user_id)


@shared_task(**CLOUD_RETRY)
def restore_quotas(allocation_id: int) -> None:
    provisioning.allocation_restore_quotas(allocation=Allocation.objects.get(pk=allocation_id))


@shared_task(acks_late=True)
def meter_allocations() -> int:
    return metering.allocations_meter(now=timezone.now())


@shared_task(acks_late=True)
def enforce_allocations() -> dict:
    return enforcement.allocations_enforce(now=timezone.now())


@shared_task(**CLOUD_RETRY)
def sync_flavor_access(kind: str) -> int:
    """Open/close private flavors for every project of this allocation kind."""
    from .models import METERED_STATUSES

    allocations = Allocation.objects.filter(kind=kind, status__in=METERED_STATUSES).exclude(openstack_project_id="")
    for allocation in allocations:
        provisioning.allocation_flavor_access_sync(allocation=allocation)
    return allocations.count()
