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
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models import Max, Q

from portal.cloud import usage
from portal.cloud.errors import CloudError, NotFound

from . import charging
from .models import (
    METERED_STATUSES,
    Allocation,
    KeystoneIdentity,
    LedgerEntry,
    LedgerKind,
    MeterCursor,
    ServerStateChange,
)
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


class _Cursor(NamedTuple):
    pk: int
    until: datetime  # charged up to here
    state: str  # the state the server was in then ("" before its first charge)
    gone: bool


@dataclass
class _Known:
    """A server to charge: as listed now, or (gone) as last known."""
    server: usage.ServerUsage
    changes: list[tuple[datetime, str]] = field(default_factory=list)  # from the action log and the mirror
    user: object = None  # who a gone server's usage was charged to before, when its maker is not known


def allocations_meter(*, now: datetime, region: str | None = None) -> int:
    """Meter every allocation whose project may hold servers, in each region it is enabled in (or
    only in `region`, "" the primary: each region's run is a task on its own queue); returns how
    many (allocation, region) pairs were metered. A region that did not answer its last sync waits
    for the next run (the cursors keep every interval, so nothing is lost)."""
    from .regions import allocation_region_keys, failing_regions

    rates = charging.family_rates_all()
    down = failing_regions()
    metered = 0
    for allocation in Allocation.objects.filter(status__in=METERED_STATUSES).exclude(openstack_project_id=""):
        for key in allocation_region_keys(allocation=allocation):
            if (region is not None and key != region) or (key and key in down):
                continue
            try:
                allocation_meter(allocation=allocation, now=now, family_rates=rates, region=key)
                metered += 1
            except CloudError as exc:  # one unreachable project or region must not stop the others
                log.warning("metering allocation %s in %r failed: %s", allocation.pk, key, exc)
    return metered


def allocation_meter(*, allocation: Allocation, now: datetime,
                     family_rates: dict[str, Decimal] | None = None, region: str = "") -> list[LedgerEntry]:
    """Charge one allocation's servers in one region ("" the primary) up to `now`; returns the
    ledger rows it wrote (the database drops any that repeat an interval already charged). Every
    region charges the allocation's one balance."""
    scope = service_scope(allocation=allocation, region=region)
    listed = usage.server_usage_list(scope=scope)
    alloc_start = datetime.combine(allocation.start_date, time.min, tzinfo=now.tzinfo)
    cursors = _cursors(allocation, [s.id for s in listed], region)  # not locked: only to choose what to ask about
    known = {s.id: _Known(server=s) for s in listed}
    starts = {s.id: _start(cursors.get(s.id), s.created_at, alloc_start) for s in listed}
    changed = {i: starts[i] for i, k in known.items()
               if k.server.updated_at is None or k.server.updated_at > starts[i]}
    unlisted = _unlisted_ids(allocation, cursors, set(known), alloc_start, now, region)
    changed |= {i: (cursors[i].until if i in cursors else None) for i in unlisted}
    _history_add(scope, allocation, known, changed, unlisted, now)
    if not known:
        return []
    price = _price_list(family_rates if family_rates is not None else charging.family_rates_all())
    users = _portal_users(k.server.user_id for k in known.values())
    with transaction.atomic():
        _commit_without_waiting_for_disk()
        locked = _cursors_lock(allocation, known, set(known) - set(cursors), alloc_start, region)
        rows, moves = _charges(allocation, known, locked, unlisted, now, price, users)
        LedgerEntry.objects.bulk_create(rows, ignore_conflicts=True)
        _cursors_move(moves)
    return rows


def _charges(allocation, known: dict[str, _Known], locked: dict[str, _Cursor], unlisted: set[str], now, price,
             users) -> tuple[list[LedgerEntry], list[tuple]]:
    """The ledger rows from each server's cursor to `now` (a gone one: to its deletion), and where
    each cursor moves to: (pk, until, state, gone)."""
    rows, moves = [], []
    for server_id, item in known.items():
        cursor, gone = locked[server_id], server_id in unlisted
        if now < cursor.until and not gone:
            continue
        end = max(min(item.server.updated_at or cursor.until, now) if gone else now, cursor.until)
        spans = state_spans(start=cursor.until, end=end, initial=_initial(cursor, item.server),
                            changes=item.changes, now_state=item.server.status, now_since=item.server.updated_at)
        rows += _rows(allocation, item.server, spans, price, users.get(item.server.user_id) or item.user)
        # Listed a moment after `now`, a server may show a state it entered after `now`.
        changed_after = item.server.updated_at is not None and item.server.updated_at > end and spans
        moves.append((cursor.pk, end, spans[-1][0] if changed_after else item.server.status, gone))
    return rows, moves


def _commit_without_waiting_for_disk() -> None:
    """A crash right after COMMIT may lose this transaction, never half of it: the cursors and the
    ledger rows go together, and the next run charges the same intervals again. So the run's
    hundred commits need not each wait for the disk."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")


def _start(cursor: _Cursor | None, created_at: datetime, alloc_start: datetime) -> datetime:
    return cursor.until if cursor else max(created_at, alloc_start)


def _initial(cursor: _Cursor, server: usage.ServerUsage) -> str | None:
    """The state at the cursor: as the last run left it; a new server builds until a change says
    otherwise; one older than the allocation is in whatever state the history says."""
    if cursor.state:
        return cursor.state
    return "BUILD" if cursor.until <= server.created_at else None


def _price_list(family_rates: dict[str, Decimal]):
    """su_per_hour, remembered per (flavor, vCPUs, state): a run prices a few combinations many times."""
    prices = {}

    def price(flavor_name: str, vcpus: int, state: str) -> Decimal:
        key = (flavor_name, vcpus, state)
        if key not in prices:
            prices[key] = charging.su_per_hour(flavor_name=flavor_name, vcpus=vcpus, status=state,
                                               family_rates=family_rates)
        return prices[key]
    return price


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


def _rows(allocation, server: usage.ServerUsage, spans, price, user) -> list[LedgerEntry]:
    """One ledger row per run of spans at the same rate, named by the state it spent longest in."""
    runs: list[list] = []  # [rate, start, end, {state: seconds}]
    for state, start, end in spans:
        rate = price(server.flavor_name, server.vcpus, state)
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

_CURSOR_FIELDS = ("resource_id", "pk", "metered_until", "last_state", "gone")


def _cursors(allocation, listed_ids, region: str) -> dict[str, _Cursor]:
    """The cursors of the region's servers still there or listed now (a listed server may have been
    thought gone)."""
    rows = MeterCursor.objects.filter(Q(gone=False, region=region) | Q(resource_id__in=listed_ids),
                                      allocation=allocation)
    return {r[0]: _Cursor(*r[1:]) for r in rows.values_list(*_CURSOR_FIELDS)}


def _cursors_lock(allocation, known: dict[str, _Known], new: set[str], alloc_start,
                  region: str = "") -> dict[str, _Cursor]:
    """Make the cursors of servers seen for the first time, then lock the cursors this run moves.
    A concurrent run waits here, then sees how far this one charged."""
    MeterCursor.objects.bulk_create(
        [MeterCursor(allocation=allocation, resource_id=i, region=region,
                     metered_until=max(known[i].server.created_at, alloc_start)) for i in new], ignore_conflicts=True)
    locked = MeterCursor.objects.select_for_update().filter(allocation=allocation, resource_id__in=list(known))
    return {r[0]: _Cursor(*r[1:]) for r in locked.values_list(*_CURSOR_FIELDS)}


def _cursors_move(moves: list[tuple[int, datetime, str, bool]]) -> None:
    """Move the cursors of listed servers with one UPDATE per state (they all end at the run's end)
    and those of gone servers, each ending at its own deletion, with one more."""
    listed, gone = defaultdict(list), []
    for pk, until, state, is_gone in moves:
        if is_gone:
            gone.append(MeterCursor(pk=pk, metered_until=until, last_state=state, gone=True))
        else:
            listed[(until, state)].append(pk)
    for (until, state), pks in listed.items():
        MeterCursor.objects.filter(pk__in=pks).update(metered_until=until, last_state=state, gone=False)
    MeterCursor.objects.bulk_update(gone, ["metered_until", "last_state", "gone"])


# --- History: the action log and the mirror ---------------------------------------------------

def _unlisted_ids(allocation, cursors: dict[str, _Cursor], listed: set[str], alloc_start: datetime,
                  now: datetime, region: str = "") -> set[str]:
    """Servers gone from the listing: those charged before, and those the mirror saw come and go
    since the last run (never listed at a run, so without a cursor)."""
    vanished = {i for i, c in cursors.items() if not c.gone and i not in listed}
    last_run = max((c.until for c in cursors.values()), default=None) or (
        MeterCursor.objects.filter(allocation=allocation, region=region).aggregate(t=Max("metered_until"))["t"])
    fleeting = set(ServerStateChange.objects.filter(
        project_id=allocation.openstack_project_id, region=region,
        since__gte=max(last_run or alloc_start, alloc_start),
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
    charged = _last_charges(allocation, [i for i in unlisted if not mirror[i]])
    for server_id, since in changed.items():
        changes = _action_changes(scope, server_id, since) + [
            (r.since, GONE if r.status in GONE_STATUSES else r.status) for r in mirror[server_id]]
        if server_id in unlisted:
            seen = mirror[server_id][-1] if mirror[server_id] else None
            known[server_id] = _gone_server(server_id, since, changes, seen, charged.get(server_id), now)
        known[server_id].changes = changes


def _last_charges(allocation, server_ids: list[str]) -> dict[str, LedgerEntry]:
    """Each server's latest usage row, in one query."""
    if not server_ids:
        return {}
    rows = (LedgerEntry.objects.filter(allocation=allocation, kind=LedgerKind.USAGE, resource_id__in=server_ids)
            .select_related("user").order_by("resource_id", "-period_end").distinct("resource_id"))
    return {e.resource_id: e for e in rows}


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


def _gone_server(server_id: str, since: datetime | None, changes, seen: ServerStateChange | None,
                 charged: LedgerEntry | None, now: datetime) -> _Known:
    """A server no longer listed, described by the mirror's last sighting or else its last charge,
    with its deletion (the first since its cursor, if it has one; None if unknown) as updated_at."""
    deleted = min((at for at, state in changes if state == GONE and (since is None or at >= since)), default=None)
    charged = None if seen else charged
    server = usage.ServerUsage(
        id=server_id, status=GONE, created_at=min([at for at, _ in changes], default=since or now), updated_at=deleted,
        name=seen.name if seen else (charged.resource_name if charged else ""),
        flavor_name=seen.flavor_name if seen else (charged.flavor if charged else ""),
        vcpus=seen.vcpus if seen else (charged.vcpus if charged else 0),
        user_id=seen.cloud_user_id if seen else "")
    return _Known(server=server, user=charged.user if charged else None)


def server_states_record(*, project_id: str, servers, seen_at: datetime, region: str = "") -> int:
    """Record each server (portal.cloud.compute.Server) whose status differs from the last one
    recorded for it; the mirror's sync calls this with what it just wrote. Returns how many."""
    if not servers:
        return 0
    last = dict(ServerStateChange.objects.filter(server_id__in=[s.id for s in servers])
                .order_by("server_id", "-since", "-id").distinct("server_id").values_list("server_id", "status"))
    changes = [ServerStateChange(
        project_id=project_id, region=region, server_id=s.id, status=s.status,
        since=min(s.updated_at or seen_at, seen_at),
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
