"""Reads about allocations, always from the point of view of a user (membership is the gate)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import Q, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.http import Http404
from django.utils import timezone

from .models import Allocation, AllocationStatus, LedgerEntry, LedgerKind, Membership


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


# --- Balance, burn rate and usage, all computed from the ledger in a few queries ----------



BURN_WINDOW_DAYS = 7


@dataclass(frozen=True)
class AllocationSummary:
    awarded: Decimal
    used: Decimal
    balance: Decimal
    burn_per_day: Decimal
    runs_out_on: date | None

    @property
    def percent_used(self) -> int:
        return min(100, round(100 * self.used / self.awarded)) if self.awarded > 0 else 0


def _summary_totals(since) -> dict:
    return dict(
        awarded=Sum("sus", filter=Q(kind=LedgerKind.AWARD)),
        adjusted=Sum("sus", filter=Q(kind=LedgerKind.ADJUSTMENT)),
        used=Sum("sus", filter=Q(kind=LedgerKind.USAGE)),
        recent=Sum("sus", filter=Q(kind=LedgerKind.USAGE, period_end__gte=since)),
    )


def _summary_from(totals: dict) -> AllocationSummary:
    awarded = (totals.get("awarded") or Decimal(0)) + (totals.get("adjusted") or Decimal(0))
    used = -(totals.get("used") or Decimal(0))
    burn = (-(totals.get("recent") or Decimal(0)) / BURN_WINDOW_DAYS).quantize(Decimal("0.01"))
    balance = awarded - used
    runs_out = None
    if burn > 0 and balance > 0:
        runs_out = timezone.localdate() + timedelta(days=int(balance / burn))
    return AllocationSummary(awarded=awarded, used=used, balance=balance, burn_per_day=burn, runs_out_on=runs_out)


def allocation_summary(*, allocation: Allocation) -> AllocationSummary:
    since = timezone.now() - timedelta(days=BURN_WINDOW_DAYS)
    return _summary_from(allocation.ledger.aggregate(**_summary_totals(since)))


def allocation_summaries(*, allocations) -> dict[int, AllocationSummary]:
    """Summaries of many allocations from one grouped query over the ledger."""
    since = timezone.now() - timedelta(days=BURN_WINDOW_DAYS)
    rows = (LedgerEntry.objects.filter(allocation__in=[a.pk for a in allocations])
            .values("allocation_id").annotate(**_summary_totals(since)))
    by_pk = {row["allocation_id"]: row for row in rows}
    return {a.pk: _summary_from(by_pk.get(a.pk, {})) for a in allocations}


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
