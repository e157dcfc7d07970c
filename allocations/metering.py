"""The meter: charge each allocation for what its project's servers did since the last run.

Each server has a cursor (how far it has been charged). A run charges [cursor, now) at the rate
of the state the server is in now, appends one ledger row, and moves the cursor, all in one
transaction; a unique constraint on (allocation, server, period start) makes a second run for
the same interval charge nothing. Servers made outside the portal are charged the same way.
"""
from __future__ import annotations

import logging
from datetime import datetime, time
from decimal import Decimal

from django.db import IntegrityError, transaction

from portal.cloud import usage
from portal.cloud.errors import CloudError

from . import charging
from .models import METERED_STATUSES, Allocation, KeystoneIdentity, LedgerEntry, LedgerKind, MeterCursor
from .scopes import service_scope

log = logging.getLogger(__name__)
HOUR = Decimal(3600)


def allocation_meter(*, allocation: Allocation, now: datetime) -> list[LedgerEntry]:
    """Charge one allocation up to `now`; returns the ledger rows it appended."""
    servers = usage.server_usage_list(scope=service_scope(allocation=allocation))
    allocation_start = datetime.combine(allocation.start_date, time.min, tzinfo=now.tzinfo)
    users = _portal_users(s.user_id for s in servers)
    entries = []
    with transaction.atomic():
        cursors = {c.resource_id: c for c in
                   MeterCursor.objects.select_for_update().filter(allocation=allocation)}
        for server in servers:
            cursor = cursors.pop(server.id, None)
            if cursor is None:
                cursor = MeterCursor.objects.create(
                    allocation=allocation, resource_id=server.id,
                    metered_until=max(server.created_at, allocation_start))
            if now <= cursor.metered_until:
                continue
            entry = _charge(allocation, server, cursor.metered_until, now, users.get(server.user_id))
            if entry:
                entries.append(entry)
            cursor.metered_until, cursor.last_state, cursor.gone = now, server.status, False
            cursor.save(update_fields=["metered_until", "last_state", "gone"])
        # Servers that vanished since the last run were charged up to it; nothing after.
        MeterCursor.objects.filter(pk__in=[c.pk for c in cursors.values() if not c.gone]).update(gone=True)
    return entries


def _charge(allocation, server, start: datetime, end: datetime, user) -> LedgerEntry | None:
    rate = charging.su_per_hour(flavor_name=server.flavor_name, vcpus=server.vcpus, status=server.status)
    sus = (rate * Decimal((end - start).total_seconds()) / HOUR).quantize(Decimal("0.0001"))
    if sus <= 0:
        return None
    try:
        with transaction.atomic():
            return LedgerEntry.objects.create(
                allocation=allocation, kind=LedgerKind.USAGE, sus=-sus, resource_id=server.id,
                resource_name=server.name, flavor=server.flavor_name, vcpus=server.vcpus, state=server.status,
                su_rate=rate, period_start=start, period_end=end, user=user)
    except IntegrityError:  # this interval was already charged by a concurrent run
        return None


def _portal_users(keystone_user_ids) -> dict:
    """Keystone user id (Nova's record of who made a server) -> portal user, in one query.

    Metadata is not trusted: any CLI user can write it."""
    ids = {i for i in keystone_user_ids if i}
    if not ids:
        return {}
    return {ks.keystone_user_id: ks.user for ks in
            KeystoneIdentity.objects.filter(keystone_user_id__in=ids).select_related("user")}


def allocations_meter(*, now: datetime) -> int:
    """Meter every allocation whose project may hold servers; returns how many were metered."""
    metered = 0
    for allocation in Allocation.objects.filter(status__in=METERED_STATUSES).exclude(openstack_project_id=""):
        try:
            allocation_meter(allocation=allocation, now=now)
            metered += 1
        except CloudError as exc:  # one unreachable project must not stop the others
            log.warning("metering allocation %s failed: %s", allocation.pk, exc)
    return metered
