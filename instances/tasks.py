"""Thin tasks: load by primary key, run one pass of a service, leave waiting to the runner.

Launches, server actions and volume actions run through portal.runner: a pass starts the cloud
call or checks on it and returns; the runner re-queues a check with a countdown until the row is
final, retries when the cloud does not answer (the row shows "retrying (n/N): …") and, at the last
try, hands the row to `give_up`, which names what was left behind. No worker sleeps on the cloud.
"""
from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.core.cache import cache

from portal.cloud.errors import CloudError
from portal.runner import CLOUD_TASK, CloudTask, run_pass

from . import services


class LaunchTask(CloudTask):
    row_model = "instances.LaunchRequest"

    def give_up(self, row, exc, *, tries):
        services.launch_give_up(row=row, exc=exc, tries=tries)


class ActionTask(CloudTask):
    row_model = "instances.CloudAction"

    def give_up(self, row, exc, *, tries):
        services.cloud_action_give_up(row=row, exc=exc, tries=tries)


@shared_task(**{**CLOUD_TASK, "base": LaunchTask})
def launch_provision(self, request_id: int) -> None:
    run_pass(self, request_id, lambda pk: services.launch_provision(request_id=pk))


@shared_task(**{**CLOUD_TASK, "base": ActionTask})
def action_run(self, action_id: int) -> None:
    run_pass(self, action_id, lambda pk: services.action_run(action_id=pk))


@shared_task(**{**CLOUD_TASK, "base": ActionTask})
def volume_action_run(self, action_id: int) -> None:
    run_pass(self, action_id, lambda pk: services.volume_action_run(action_id=pk))


@shared_task(acks_late=True)
def sync_project(allocation_id: int, full: bool = False, region: str = "") -> dict | None:
    """Sync one project's mirror in one region; a lock makes overlapping syncs of one a no-op."""
    from allocations.models import Allocation

    allocation = Allocation.objects.filter(pk=allocation_id).exclude(openstack_project_id="").first()
    if allocation is None:
        return None
    lock = f"instances:sync-lock:{allocation.openstack_project_id}:{region}"
    if not cache.add(lock, 1, timeout=120):
        return None
    try:
        return services.project_sync(allocation=allocation, full=full, region=region)
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
    return len(ids) + sync_regions(ids)


def sync_regions(allocation_ids) -> int:
    """A sync of each allocation's project in each other region it is enabled in, on that region's
    own queue (a region that does not answer holds up only its own)."""
    from allocations.models import AllocationRegion
    from allocations.regions import region_key
    from portal.runner import region_queue

    pairs = AllocationRegion.objects.filter(allocation_id__in=list(allocation_ids),
                                            state=AllocationRegion.State.READY).values_list("allocation_id",
                                                                                           "region_name")
    sent = 0
    for pk, name in pairs:
        if key := region_key(name):
            sync_project.apply_async((pk, False, key), queue=region_queue(key, "sync"))
            sent += 1
    return sent


@shared_task(acks_late=True)
def resume_stale_launches() -> int:
    """Beat: re-enqueue launches and actions whose worker died mid-pass (the name predates actions)."""
    stale = settings.PORTAL_LAUNCH_STALE_SECONDS
    return (services.launch_requests_resume(stale_seconds=stale)
            + services.cloud_actions_resume(stale_seconds=stale))


def sync_soon(allocation_ids) -> None:
    """Ask for a sync of these projects now, at most once every few seconds each (pages in flux)."""
    soon = [pk for pk in allocation_ids
            if cache.add(f"instances:sync-soon:{pk}", 1, timeout=settings.PORTAL_SYNC_SOON_SECONDS)]
    for pk in soon:
        sync_project.delay(pk)
    if soon:
        sync_regions(soon)
