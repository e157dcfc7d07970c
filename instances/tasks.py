"""Thin tasks: load by primary key, call a service, own retries."""
from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from portal.cloud.errors import CloudError, CloudUnavailable

from . import services


@shared_task(acks_late=True, autoretry_for=(CloudUnavailable,), retry_backoff=5, retry_backoff_max=60, max_retries=5)
def launch_provision(request_id: int) -> None:
    services.launch_provision(request_id=request_id)


@shared_task(acks_late=True, autoretry_for=(CloudUnavailable,), retry_backoff=5, retry_backoff_max=60, max_retries=5)
def action_run(action_id: int) -> None:
    services.action_run(action_id=action_id)


@shared_task(acks_late=True, autoretry_for=(CloudUnavailable,), retry_backoff=5, retry_backoff_max=60, max_retries=5)
def volume_action_run(action_id: int) -> None:
    services.volume_action_run(action_id=action_id)


@shared_task(acks_late=True)
def sync_project(allocation_id: int, full: bool = False) -> dict | None:
    """Sync one project's mirror; a lock makes overlapping syncs of one project a no-op."""
    from allocations.models import Allocation

    allocation = Allocation.objects.filter(pk=allocation_id).exclude(openstack_project_id="").first()
    if allocation is None:
        return None
    lock = f"instances:sync-lock:{allocation.openstack_project_id}"
    if not cache.add(lock, 1, timeout=120):
        return None
    try:
        return services.project_sync(allocation=allocation, full=full)
    except CloudError:
        return None
    finally:
        cache.delete(lock)


@shared_task(acks_late=True)
def sync_all_projects() -> int:
    """Beat: enqueue a sync of every allocation whose project may hold servers."""
    from allocations.models import METERED_STATUSES, Allocation

    ids = list(Allocation.objects.filter(status__in=METERED_STATUSES).exclude(openstack_project_id="")
               .values_list("pk", flat=True))
    for pk in ids:
        sync_project.delay(pk)
    return len(ids)


@shared_task(acks_late=True)
def resume_stale_launches() -> int:
    return services.launch_requests_resume(stale_seconds=settings.PORTAL_LAUNCH_STALE_SECONDS)


def sync_soon(allocation_ids) -> None:
    """Ask for a sync of these projects now, at most once every few seconds each (pages in flux)."""
    for pk in allocation_ids:
        if cache.add(f"instances:sync-soon:{pk}", 1, timeout=settings.PORTAL_SYNC_SOON_SECONDS):
            sync_project.delay(pk)
