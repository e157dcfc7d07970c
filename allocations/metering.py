"""The meter: charge each allocation for what its project's servers did since the last run.

Each server has a cursor: how far it has been charged, and the state it was in then. A run splits
[cursor, now) where the server's state changed and charges each part at its own rate (30 minutes
ACTIVE then 30 minutes SHUTOFF of a 4-vCPU m3 is 2 + 1 SU): one ledger row per server and part,
adjacent parts at the same rate making one row, parts charged nothing making none. Where the
state changed comes from three sources, each right about *when*:

- Nova's listing: a server's status now and its updated_at, which every state change moves, so
  the status has held since then and nothing changed after it;
- Nova's action log (create, stop, shelve, delete, ...): an action took effect when its last
  event finished;
- the mirror's record of the statuses its sync saw (ServerStateChange), which has the changes no
  action records (a guest that powered itself off, an error).

A server whose updated_at is older than its cursor did not change: only servers that did cost a
cloud call or a history query. A server gone from the listing is charged up to its deletion (from
the action log or the mirror; when neither knows, up to the last run). One that came and went
between two runs is charged from what the mirror saw of it.

Each project is charged in its own short transaction: its cursors locked in one query, ledger
rows inserted in bulk, cursors moved by a few UPDATEs. A unique constraint on (allocation, server,
period start) refuses a second charge for an interval; the locked cursors make a concurrent run
charge only what came after the first.
"""
from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import Decimal

from django.db import transaction
from django.db.models import Max, Q

from portal.cloud import usage
from portal.cloud.errors import CloudError, NotFound

from . import charging
from .models import (METERED_STATUSES, Allocation, KeystoneIdentity, LedgerEntry, LedgerKind, MeterCursor,
                     ServerStateChange)
from .scopes import service_scope

log = logging.getLogger(__name__)
HOUR = Decimal(3600)
GONE = "DELETED"
GONE_STATUSES = (GONE, "SOFT_DELETED")

# Nova action -> the status it leaves a server in once finished. Actions that keep the status
# (lock, attach, snapshot, live migration) or whose outcome depends on it (rebuild, resize,
# evacuate, resetState) are left to the listing's updated_at and the mirror.
ACTION_STATES = {
    "create": "ACTIVE", "start": "ACTIVE", "reboot": "ACTIVE", "unpause": "ACTIVE", "resume": "ACTIVE",
    "unshelve": "ACTIVE", "unrescue": "ACTIVE", "restore": "ACTIVE", "stop": "SHUTOFF", "pause": "PAUSED",
    "suspend": "SUSPENDED", "rescue": "RESCUE", "shelve": "SHELVED", "shelveOffload": "SHELVED_OFFLOADED",
    "delete": GONE,
}


@dataclass
class _Known:
    """A server to charge: as listed now, or (gone) as last known."""
    server: usage.ServerUsage
    changes: list[tuple[datetime, str]] = field(default_factory=list)  # from the action log and the mirror
    user: object = None  # who a gone server's usage was charged to before, when its maker is not known


def allocations_meter(*, now: datetime) -> int:
    """Meter every allocation whose project may hold servers; returns how many were metered."""
    rates = charging.family_rates_all()
    metered = 0
    for allocation in Allocation.objects.filter(status__in=METERED_STATUSES).exclude(openstack_project_id=""):
        try:
            allocation_meter(allocation=allocation, now=now, family_rates=rates)
            metered += 1
        except CloudError as exc:  # one unreachable project must not stop the others
            log.warning("metering allocation %s failed: %s", allocation.pk, exc)
    return metered


def allocation_meter(*, allocation: Allocation, now: datetime,
                     family_rates: dict[str, Decimal] | None = None) -> list[LedgerEntry]:
    """Charge one allocation up to `now`; returns the ledger rows it appended."""
    scope = service_scope(allocation=allocation)
    listed = usage.server_usage_list(scope=scope)
    alloc_start = datetime.combine(allocation.start_date, time.min, tzinfo=now.tzinfo)
    cursors = _cursors(allocation, [s.id for s in listed])  # unlocked: only to choose what to ask about
    known = {s.id: _Known(server=s) for s in listed}
    starts = {s.id: _start(cursors.get(s.id), s.created_at, alloc_start) for s in listed}
    changed = {i: starts[i] for i, k in known.items()
               if k.server.updated_at is None or k.server.updated_at > starts[i]}
    unlisted = _unlisted_ids(allocation, cursors, set(known), alloc_start, now)
    changed |= {i: (cursors[i].metered_until if i in cursors else None) for i in unlisted}
    _history_add(scope, allocation, known, changed, unlisted, now)
    if not known:
        return []
    rates = family_rates if family_rates is not None else charging.family_rates_all()
    users = _portal_users(k.server.user_id for k in known.values())
    with transaction.atomic():
        locked = _cursors_lock(allocation, known, set(known) - set(cursors), alloc_start)
        rows, moves = [], []
        for server_id, item in known.items():
            cursor, gone = locked[server_id], server_id in unlisted
            if now < cursor.metered_until and not gone:
                continue
            end = max(min(item.server.updated_at or cursor.metered_until, now) if gone else now, cursor.metered_until)
            spans = state_spans(start=cursor.metered_until, end=end, initial=_initial(cursor, item.server),
                                changes=item.changes, now_state=item.server.status, now_since=item.server.updated_at)
            rows += _rows(allocation, item.server, spans, rates, users.get(item.server.user_id) or item.user)
            moves.append((cursor.pk, end, item.server.status, gone))
        LedgerEntry.objects.bulk_create(rows, ignore_conflicts=True)
        _cursors_move(moves)
    return rows


def _start(cursor: MeterCursor | None, created_at: datetime, alloc_start: datetime) -> datetime:
    return cursor.metered_until if cursor else max(created_at, alloc_start)


def _initial(cursor: MeterCursor, server: usage.ServerUsage) -> str | None:
    """The state at the cursor: as the last run left it; a new server builds until a change says
    otherwise; one older than the allocation is in whatever state the history says."""
    if cursor.last_state:
        return cursor.last_state
    return "BUILD" if cursor.metered_until <= server.created_at else None


def state_spans(*, start: datetime, end: datetime, initial: str | None, changes: list[tuple[datetime, str]],
                now_state: str, now_since: datetime | None) -> list[tuple[str, datetime, datetime]]:
    """[start, end) split where the state changed: [(state, from, to)].

    `changes` are (time, state) from the action log and the mirror. `now_state` is the state at
    `end` and `now_since` when it began at the latest (Nova's updated_at, or a deletion time); a
    change placed later by another source is the same change seen a moment late, and is dropped.
    `initial` is the state at `start` if known (a change at `start` itself overrides it); otherwise
    the last change before `start` says it, or failing that the first one after.
    """
    changes = sorted((c for c in changes if now_since is None or c[0] < now_since), key=lambda c: c[0])
    before = [state for at, state in changes if at < start]
    timeline = [c for c in changes if start <= c[0] < end]
    timeline.append((max(now_since, start), now_state) if now_since is not None else (end, now_state))
    state = initial or (before[-1] if before else timeline[0][1])
    spans, at = [], start
    for when, new in timeline:
        when = min(when, end)
        if when > at:
            spans.append((state, at, when))
            at = when
        state = new
    if at < end:
        spans.append((state, at, end))
    return spans


def _rows(allocation, server: usage.ServerUsage, spans, rates, user) -> list[LedgerEntry]:
    """One ledger row per run of spans at the same rate, named by the state it spent longest in."""
    runs: list[list] = []  # [rate, start, end, {state: seconds}]
    for state, start, end in spans:
        rate = charging.su_per_hour(flavor_name=server.flavor_name, vcpus=server.vcpus, status=state,
                                    family_rates=rates)
        if runs and runs[-1][0] == rate and runs[-1][2] == start:
            runs[-1][2] = end
        else:
            runs.append([rate, start, end, defaultdict(float)])
        runs[-1][3][state] += (end - start).total_seconds()
    rows = []
    for rate, start, end, seconds in runs:
        sus = (rate * Decimal((end - start).total_seconds()) / HOUR).quantize(Decimal("0.0001"))
        if sus > 0:
            rows.append(LedgerEntry(
                allocation=allocation, kind=LedgerKind.USAGE, sus=-sus, resource_id=server.id,
                resource_name=server.name, flavor=server.flavor_name, vcpus=server.vcpus,
                state=max(seconds, key=seconds.get), su_rate=rate, period_start=start, period_end=end, user=user))
    return rows


# --- Cursors ----------------------------------------------------------------------------------

def _cursors(allocation, listed_ids) -> dict[str, MeterCursor]:
    """The cursors of servers still there or listed now (a listed server may have been thought gone)."""
    rows = MeterCursor.objects.filter(Q(gone=False) | Q(resource_id__in=listed_ids), allocation=allocation)
    return {c.resource_id: c for c in rows}


def _cursors_lock(allocation, known: dict[str, _Known], new: set[str], alloc_start) -> dict[str, MeterCursor]:
    """Make the cursors of servers seen for the first time, then lock the cursors this run moves.
    A concurrent run waits here, then sees how far this one charged."""
    MeterCursor.objects.bulk_create(
        [MeterCursor(allocation=allocation, resource_id=i, metered_until=max(known[i].server.created_at, alloc_start))
         for i in new], ignore_conflicts=True)
    locked = MeterCursor.objects.select_for_update().filter(allocation=allocation, resource_id__in=list(known))
    return {c.resource_id: c for c in locked}


def _cursors_move(moves: list[tuple[int, datetime, str, bool]]) -> None:
    """Move cursors with one UPDATE per (until, state, gone): most share the run's end and a state."""
    groups = defaultdict(list)
    for pk, until, state, gone in moves:
        groups[(until, state, gone)].append(pk)
    for (until, state, gone), pks in groups.items():
        MeterCursor.objects.filter(pk__in=pks).update(metered_until=until, last_state=state, gone=gone)


# --- History: the action log and the mirror ---------------------------------------------------

def _unlisted_ids(allocation, cursors: dict[str, MeterCursor], listed: set[str], alloc_start: datetime,
                  now: datetime) -> set[str]:
    """Servers gone from the listing: those charged before, and those the mirror saw come and go
    since the last run (never listed at a run, so without a cursor)."""
    vanished = {i for i, c in cursors.items() if not c.gone and i not in listed}
    last_run = max((c.metered_until for c in cursors.values()), default=None) or (
        MeterCursor.objects.filter(allocation=allocation).aggregate(t=Max("metered_until"))["t"])
    fleeting = set(ServerStateChange.objects.filter(
        project_id=allocation.openstack_project_id, since__gte=max(last_run or alloc_start, alloc_start),
        since__lt=now).exclude(server_id__in=listed | set(cursors)).values_list("server_id", flat=True))
    if fleeting:
        fleeting -= set(MeterCursor.objects.filter(allocation=allocation, resource_id__in=fleeting)
                        .values_list("resource_id", flat=True))
    return vanished | fleeting


def _history_add(scope, allocation, known: dict[str, _Known], changed: dict[str, datetime | None],
                 unlisted: set[str], now: datetime) -> None:
    """Give each server that changed since its cursor (None: ever) its state changes, and add each
    unlisted one to `known` as last seen, its deletion time standing for updated_at."""
    if not changed:
        return
    mirror = defaultdict(list)
    rows = ServerStateChange.objects.filter(project_id=allocation.openstack_project_id,
                                            server_id__in=list(changed), since__lt=now)
    listed_starts = [s for i, s in changed.items() if i not in unlisted]
    if listed_starts:  # all of a gone server's record (it says what it was); the rest since its cursor
        rows = rows.filter(Q(since__gte=min(listed_starts)) | Q(server_id__in=list(unlisted)))
    for row in rows.order_by("since", "id"):
        mirror[row.server_id].append(row)
    for server_id, since in changed.items():
        changes = _action_changes(scope, server_id, since) + [
            (r.since, GONE if r.status in GONE_STATUSES else r.status) for r in mirror[server_id]]
        if server_id in unlisted:
            known[server_id] = _gone_server(allocation, server_id, since, changes, mirror[server_id], now)
        known[server_id].changes = changes


def _action_changes(scope, server_id: str, since: datetime | None) -> list[tuple[datetime, str]]:
    """(when it took effect, the state it left) for each finished, successful state-changing action."""
    try:
        actions = usage.server_action_list(scope=scope, server_id=server_id, changes_since=since)
    except NotFound:  # purged from Nova's database: nothing more to learn
        return []
    changes = []
    for a in actions:
        state = ACTION_STATES.get(a.action)
        # A delete Nova's API carried out alone (a server never scheduled) has no events: it took
        # effect when asked for.
        when = a.finish_time or (a.start_time if a.action == "delete" and not a.events else None)
        if state and when and not a.failed:
            changes.append((when, state))
    return changes


def _gone_server(allocation, server_id: str, since: datetime | None, changes, mirror_rows, now) -> _Known:
    """A server no longer listed, described by the mirror's last sighting or its last charge, with
    its deletion (the first one since its cursor, if it has one; None if unknown) as updated_at."""
    deleted = min((at for at, state in changes if state == GONE and (since is None or at >= since)), default=None)
    seen = mirror_rows[-1] if mirror_rows else None
    charged = (LedgerEntry.objects.filter(allocation=allocation, kind=LedgerKind.USAGE, resource_id=server_id)
               .select_related("user").order_by("-period_end").first()) if seen is None else None
    server = usage.ServerUsage(
        id=server_id, status=GONE, created_at=min([at for at, _ in changes], default=since or now), updated_at=deleted,
        name=seen.name if seen else (charged.resource_name if charged else ""),
        flavor_name=seen.flavor_name if seen else (charged.flavor if charged else ""),
        vcpus=seen.vcpus if seen else (charged.vcpus if charged else 0),
        user_id=seen.cloud_user_id if seen else "")
    return _Known(server=server, user=charged.user if charged else None)


def server_states_record(*, project_id: str, servers, seen_at: datetime) -> int:
    """Record each server (portal.cloud.compute.Server) whose status differs from the last one
    recorded for it; the mirror's sync calls this with what it just wrote. Returns how many."""
    if not servers:
        return 0
    last = dict(ServerStateChange.objects.filter(server_id__in=[s.id for s in servers])
                .order_by("server_id", "-since", "-id").distinct("server_id").values_list("server_id", "status"))
    changes = [ServerStateChange(
        project_id=project_id, server_id=s.id, status=s.status, since=min(s.updated_at or seen_at, seen_at),
        flavor_name=s.flavor.name, vcpus=s.flavor.vcpus, name=s.name, cloud_user_id=s.user_id, seen_at=seen_at)
        for s in servers if s.status and last.get(s.id) != s.status]
    ServerStateChange.objects.bulk_create(changes, ignore_conflicts=True)
    return len(changes)


def _portal_users(keystone_user_ids) -> dict:
    """Keystone user id (Nova's record of who made a server) -> portal user, in one query.

    Metadata is not trusted: any CLI user can write it."""
    ids = {i for i in keystone_user_ids if i}
    if not ids:
        return {}
    return {ks.keystone_user_id: ks.user for ks in
            KeystoneIdentity.objects.filter(keystone_user_id__in=ids).select_related("user")}
