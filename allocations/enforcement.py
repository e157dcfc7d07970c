"""Exhaustion, expiry and their consequences: disable, then shelve, then delete; mail first."""
from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Q, Sum
from django.utils import timezone

from portal.cloud import usage
from portal.cloud.errors import CloudError

from . import notifications, provisioning
from .models import Allocation, AllocationStatus, LedgerKind
from .scopes import service_scope

log = logging.getLogger(__name__)


def _awarded(allocation: Allocation) -> Decimal:
    return allocation.ledger.filter(kind=LedgerKind.AWARD).aggregate(t=Sum("sus"))["t"] or Decimal(0)


def allocation_check_balance(*, allocation: Allocation, now: datetime) -> str | None:
    """Disable an active allocation that ran out of SUs or time; warn at 25% and 10% left."""
    balance = allocation.balance()
    today = timezone.localdate(now)
    reason = None
    if balance <= 0:
        reason, status = "has used all of its SUs", AllocationStatus.EXHAUSTED
    elif allocation.end_date < today:
        reason, status = f"ended on {allocation.end_date}", AllocationStatus.EXPIRED
    if reason:
        notifications.notify_disabled(allocation, reason, settings.PORTAL_GRACE_DAYS, settings.PORTAL_REMOVAL_DAYS)
        allocation.status, allocation.disabled_at = status, now
        allocation.save(update_fields=["status", "disabled_at", "updated_at"])
        # Quota 0 stops launches from the CLI and Horizon too, not only from the portal.
        provisioning.allocation_stop_launches(allocation=allocation)
        return status
    awarded = _awarded(allocation)
    if awarded > 0:
        for percent, field in ((10, "warned_10_at"), (25, "warned_25_at")):
            if balance <= awarded * percent / 100 and getattr(allocation, field) is None:
                notifications.notify_low_balance(allocation, percent, balance)
                Allocation.objects.filter(pk=allocation.pk).update(
                    warned_10_at=now if percent == 10 else allocation.warned_10_at, warned_25_at=now)
                return f"warned {percent}%"
    return None


# For this long after a purge, each sweep deletes what the first could not (in-use volumes).
PURGE_SWEEP = timedelta(days=1)


def allocation_apply_grace(*, allocation: Allocation, now: datetime) -> str | None:
    """After the grace period shelve the servers; after the removal period delete everything; in
    every region the allocation is enabled in (one that does not answer is tried again next sweep)."""
    from .regions import allocation_region_keys

    disabled_for = now - allocation.disabled_at
    scopes = [service_scope(allocation=allocation, region=r) for r in allocation_region_keys(allocation=allocation)]
    if disabled_for >= timedelta(days=settings.PORTAL_REMOVAL_DAYS) and allocation.purged_at is None:
        notifications.notify_purging(allocation)
        for scope in scopes:
            usage.project_resources_delete(scope=scope)
        Allocation.objects.filter(pk=allocation.pk).update(purged_at=now)
        return "purged"
    if allocation.purged_at is not None and now - allocation.purged_at < PURGE_SWEEP:
        # Nothing waits for the deletes: later sweeps remove what could not go at once (volumes
        # still attached to the servers being deleted).
        left = [usage.project_resources_delete(scope=scope) for scope in scopes]
        return "purged what was left" if any(any(x.values()) for x in left) else None
    if disabled_for >= timedelta(days=settings.PORTAL_GRACE_DAYS) and allocation.shelved_at is None:
        notifications.notify_shelving(allocation, settings.PORTAL_REMOVAL_DAYS)
        for scope in scopes:
            usage.server_shelve_all(scope=scope)
        Allocation.objects.filter(pk=allocation.pk).update(shelved_at=now)
        return "shelved"
    return None


def allocations_enforce(*, now: datetime) -> dict:
    """One sweep over every allocation; returns {allocation id: what was done}."""
    done = {}
    provisioned = Allocation.objects.exclude(openstack_project_id="")
    for allocation in provisioned.filter(status=AllocationStatus.ACTIVE).select_related("pi"):
        try:
            if step := allocation_check_balance(allocation=allocation, now=now):
                done[allocation.pk] = step
        except CloudError as exc:
            log.warning("enforcing allocation %s failed: %s", allocation.pk, exc)
    pending = provisioned.filter(disabled_at__isnull=False).filter(
        Q(shelved_at__isnull=True) | Q(purged_at__isnull=True) | Q(purged_at__gte=now - PURGE_SWEEP)).exclude(
        status__in=[AllocationStatus.ACTIVE]).select_related("pi")
    for allocation in pending:
        try:
            if step := allocation_apply_grace(allocation=allocation, now=now):
                done[allocation.pk] = step
        except CloudError as exc:
            log.warning("enforcing allocation %s failed: %s", allocation.pk, exc)
    return done
