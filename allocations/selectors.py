"""Reads about allocations, always from the point of view of a user (membership is the gate)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import (
    Count,
    DateTimeField,
    DecimalField,
    ExpressionWrapper,
    F,
    Func,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
)
from django.db.models.functions import Greatest, NullIf, TruncDate
from django.http import Http404
from django.utils import timezone

from .charging import family_rates_all, su_per_hour
from .models import Allocation, AllocationStatus, LedgerEntry, LedgerKind, Membership, MeterCursor

HOUR = Decimal(3600)


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
        raise Http404("No such allocation.") from None


# PostgreSQL bigint: a larger number names no row (and must not reach the database).
MAX_PK = 2**63 - 1


def allocation_pick(*, user, pk, among=None, first: bool = False) -> Allocation | None:
    """The allocation `pk` names among `among`: by default every allocation the user belongs to;
    else a queryset or list of them (the usable ones, the ones with a project, an API token's one).
    A pk naming none of them, or no number at all, is a 404: the same answer for someone else's
    allocation and a typo, so existence does not leak. No pk: None, or with `first` the first of
    `among` (a page's default choice)."""
    among = allocation_list_for_user(user=user) if among is None else among
    is_query = isinstance(among, QuerySet)
    if pk is None or pk == "":
        if not first:
            return None
        return among.first() if is_query else next(iter(among), None)
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404("No such allocation.") from None
    found = None
    if 0 < pk <= MAX_PK:
        found = among.filter(pk=pk).first() if is_query else next((a for a in among if a.pk == pk), None)
    if found is None:
        raise Http404("No such allocation.")
    return found


def allocation_for_request(request, *, among=None, first: bool = False, param: str = "project") -> Allocation | None:
    """The allocation a page's request chose: its form's `project` field, else `?project=`; see
    `allocation_pick` for `among`, `first` and the 404."""
    pk = request.POST.get(param) or request.GET.get(param)
    return allocation_pick(user=request.user, pk=pk, among=among, first=first)


def allocation_get_for_project(*, user, project_id: str) -> Allocation:
    """The allocation mapped to an OpenStack project, or 404 if the user is not a member."""
    allocation = allocation_list_for_user(user=user).filter(openstack_project_id=project_id).first()
    if allocation is None or not project_id:
        raise Http404("No such project.")
    return allocation


def membership_get(*, user, allocation: Allocation) -> Membership | None:
    return Membership.objects.filter(user=user, allocation=allocation).first()


# --- Balance, current cost, burn rate and run-out: the ledger plus the mirror, in a few queries --

# The burn rate looks at the last day: what the meter charged in it, plus what the servers
# running now cost since the meter last ran (it runs hourly; without the tail a busy project
# would read "0 SUs/day" for up to an hour).
BURN_WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class AllocationSummary:
    awarded: Decimal
    used: Decimal
    balance: Decimal  # the ledger's sum: what the meter has charged so far
    burn_per_day: Decimal
    runs_out_on: date | None  # only when it comes before the end date
    su_per_hour: Decimal = Decimal(0)  # what the allocation's servers cost now, by their state
    servers_charged: int = 0  # servers that cost something now
    last_metered_at: datetime | None = None
    unmetered_sus: Decimal = Decimal(0)  # the servers' cost since the meter last ran (an estimate)
    end_date: date | None = None

    @property
    def percent_used(self) -> int:
        return min(100, round(100 * self.used / self.awarded)) if self.awarded > 0 else 0

    @property
    def balance_now(self) -> Decimal:
        """The balance less what is used but not yet metered."""
        return self.balance - self.unmetered_sus

    @property
    def is_burning(self) -> bool:
        return self.burn_per_day > 0

    @property
    def is_used_up(self) -> bool:
        return self.balance_now <= 0 < self.awarded

    @property
    def lasts_past_end(self) -> bool:
        return self.is_burning and not self.is_used_up and self.runs_out_on is None


class _EpochSeconds(Func):
    template = "EXTRACT(EPOCH FROM %(expressions)s)"
    output_field = DecimalField()


def _summary_totals(since: datetime) -> dict:
    usage = Q(kind=LedgerKind.USAGE)
    # A charge that straddles the window's start counts for the part inside it.
    overlap = ExpressionWrapper(
        F("sus")
        * _EpochSeconds(F("period_end") - Greatest(F("period_start"), Value(since, output_field=DateTimeField())))
        / NullIf(_EpochSeconds(F("period_end") - F("period_start")), Value(0)),
        output_field=DecimalField())
    return dict(
        awarded=Sum("sus", filter=Q(kind=LedgerKind.AWARD)),
        adjusted=Sum("sus", filter=Q(kind=LedgerKind.ADJUSTMENT)),
        used=Sum("sus", filter=usage),
        recent=Sum(overlap, filter=usage & Q(period_end__gt=since, period_start__isnull=False)),
        metered_until=Max("period_end", filter=usage),
    )


def _cost_now(allocation_ids) -> dict[int, list[dict]]:
    """Per allocation, its live servers grouped by flavor and state (one query over the mirror)."""
    from instances.models import Instance

    groups: dict[int, list[dict]] = {}
    for row in (Instance.objects.filter(allocation__in=allocation_ids, deleted_at__isnull=True)
                .values("allocation_id", "flavor_name", "vcpus", "status")
                .annotate(n=Count("pk"), oldest=Min("cloud_created_at")).order_by()):
        groups.setdefault(row["allocation_id"], []).append(row)
    return groups


def _summary_from(*, allocation: Allocation, totals: dict, servers: list[dict], cursor_until, rates,
                  now: datetime) -> AllocationSummary:
    awarded = (totals.get("awarded") or Decimal(0)) + (totals.get("adjusted") or Decimal(0))
    used = -(totals.get("used") or Decimal(0))
    balance = awarded - used
    metered = [t for t in (totals.get("metered_until"), cursor_until) if t is not None]
    last_metered = max(metered) if metered else None
    started = datetime.combine(allocation.start_date, time.min, tzinfo=now.tzinfo)
    # The window is the last day, or less for an allocation that started within it.
    window_start = max(now - BURN_WINDOW, started)
    hourly, charged, unmetered, window_tail = Decimal(0), 0, Decimal(0), Decimal(0)
    for group in servers:
        rate = su_per_hour(flavor_name=group["flavor_name"], vcpus=group["vcpus"], status=group["status"],
                           family_rates=rates)
        if rate <= 0:
            continue
        hourly += rate * group["n"]
        charged += group["n"]
        # Not yet charged: since the meter last ran, or since the servers were made if later.
        since = max(last_metered or started, group["oldest"] or started)
        unmetered += rate * group["n"] * _hours(now - since)
        window_tail += rate * group["n"] * _hours(now - max(since, window_start))
    window_hours = Decimal(max((now - window_start).total_seconds(), 60)) / HOUR
    recent = -(totals.get("recent") or Decimal(0))
    burn = ((recent + window_tail) * 24 / window_hours).quantize(Decimal("0.01"))
    return AllocationSummary(
        awarded=awarded, used=used, balance=balance, burn_per_day=burn,
        runs_out_on=_runs_out_on(balance - unmetered, burn, allocation.end_date),
        su_per_hour=hourly.quantize(Decimal("0.01")), servers_charged=charged, last_metered_at=last_metered,
        unmetered_sus=unmetered.quantize(Decimal("0.01")), end_date=allocation.end_date)


def _hours(delta: timedelta) -> Decimal:
    return Decimal(max(0.0, delta.total_seconds())) / HOUR


def _runs_out_on(balance: Decimal, burn: Decimal, end_date: date | None) -> date | None:
    """The day the balance reaches zero at this burn rate, if that comes before the end date."""
    today = timezone.localdate()
    if burn <= 0:
        return None
    if balance <= 0:
        return today
    days = int(balance / burn)
    if end_date is not None and days >= (end_date - today).days:
        return None  # it lasts past the end (and a far-off date is not computed at all)
    return today + timedelta(days=days)


def allocation_summary(*, allocation: Allocation) -> AllocationSummary:
    return allocation_summaries(allocations=[allocation])[allocation.pk]


def allocation_summaries(*, allocations) -> dict[int, AllocationSummary]:
    """Summaries of many allocations in four queries, however many there are: the ledger grouped
    by allocation, the meter's cursors, the mirror's live servers grouped, the family rates."""
    now = timezone.now()
    ids = [a.pk for a in allocations]
    if not ids:
        return {}
    rows = (LedgerEntry.objects.filter(allocation__in=ids)
            .values("allocation_id").annotate(**_summary_totals(now - BURN_WINDOW)).order_by())
    by_pk = {row["allocation_id"]: row for row in rows}
    cursors = dict(MeterCursor.objects.filter(allocation__in=ids).values("allocation_id")
                   .annotate(until=Max("metered_until")).order_by().values_list("allocation_id", "until"))
    servers = _cost_now(ids)
    rates = family_rates_all()
    return {a.pk: _summary_from(allocation=a, totals=by_pk.get(a.pk, {}), servers=servers.get(a.pk, []),
                                cursor_until=cursors.get(a.pk), rates=rates, now=now) for a in allocations}


def allocation_daily_usage(*, allocation: Allocation, days: int = 30) -> list[tuple[date, Decimal]]:
    """SUs used per day over the last `days` days (days without usage included as zero)."""
    today = timezone.localdate()
    start = today - timedelta(days=days - 1)
    rows = (allocation.ledger.filter(kind=LedgerKind.USAGE, period_end__date__gte=start)
            .annotate(day=TruncDate("period_end")).values("day").annotate(sus=Sum("sus")))
    by_day = {r["day"]: -r["sus"] for r in rows}
    return [(start + timedelta(days=i), by_day.get(start + timedelta(days=i), Decimal(0))) for i in range(days)]


def allocation_member_usage(*, allocation: Allocation) -> list[dict]:
    """Each member with their role and SUs used; usage from outside the portal as its own row."""
    used = dict(allocation.ledger.filter(kind=LedgerKind.USAGE).values("user_id").annotate(sus=Sum("sus"))
                .values_list("user_id", "sus"))
    members = [{"membership": m, "user": m.user, "sus": -(used.pop(m.user_id, None) or Decimal(0))}
               for m in allocation.memberships.select_related("user").order_by("role", "user__email")]
    outside = -sum((v for v in used.values()), Decimal(0))
    return members + ([{"membership": None, "user": None, "sus": outside}] if outside else [])


def ledger_page(*, allocation: Allocation):
    return LedgerEntry.objects.filter(allocation=allocation).select_related("user").order_by("-created_at", "-id")
