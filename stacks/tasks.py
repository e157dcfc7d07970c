"""Thin tasks: a stack operation's passes run through portal.runner (one pass, then a re-queued
check while the row is not final; the one retry policy when the cloud does not answer)."""
from __future__ import annotations

from celery import shared_task
from django.core.cache import cache

from portal.cloud.errors import CloudError
from portal.runner import CLOUD_TASK, CloudTask, run_pass


class OperationTask(CloudTask):
    row_model = "stacks.StackOperation"


@shared_task(**{**CLOUD_TASK, "base": OperationTask})
def operation_run(self, operation_id: int) -> None:
    from .operations import operation_pass

    run_pass(self, operation_id, operation_pass)


@shared_task(acks_late=True)
def resume_stale_operations() -> int:
    from django.conf import settings

    from .services import operations_resume

    return operations_resume(stale_seconds=settings.PORTAL_LAUNCH_STALE_SECONDS)


@shared_task(acks_late=True)
def sync_stacks(allocation_id: int) -> dict | None:
    """One project's stacks into the mirror; overlapping syncs of one project are a no-op."""
    from allocations.models import Allocation

    from .services import stacks_sync

    allocation = Allocation.objects.filter(pk=allocation_id).exclude(openstack_project_id="").first()
    if allocation is None:
        return None
    lock = f"stacks:sync-lock:{allocation.openstack_project_id}"
    if not cache.add(lock, 1, timeout=120):
        return None
    try:
        return stacks_sync(allocation=allocation)
    except CloudError:
        return None
    finally:
        cache.delete(lock)


@shared_task(acks_late=True)
def sync_all_stacks() -> int:
    """Beat: a stacks sync of every allocation whose project may hold stacks; and re-enqueue stack
    operations whose chain of passes stopped (a worker died mid-pass)."""
    from django.conf import settings

    from allocations.models import METERED_STATUSES, Allocation

    from .services import operations_resume

    ids = list(Allocation.objects.filter(status__in=METERED_STATUSES).exclude(openstack_project_id="")
               .values_list("pk", flat=True))
    for pk in ids:
        sync_stacks.apply_async(args=(pk,), queue=settings.PORTAL_SYNC_QUEUE)
    operations_resume(stale_seconds=settings.PORTAL_LAUNCH_STALE_SECONDS)
    return len(ids)


def sync_soon(allocation_ids) -> None:
    """Ask for a stacks sync of these projects now, at most once every few seconds each (a page in view)."""
    from django.conf import settings

    for pk in allocation_ids:
        if cache.add(f"stacks:sync-soon:{pk}", 1, timeout=max(settings.PORTAL_SYNC_SOON_SECONDS, 5)):
            sync_stacks.apply_async(args=(pk,), queue=settings.PORTAL_SYNC_QUEUE)
