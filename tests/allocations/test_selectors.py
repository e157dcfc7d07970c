"""What the allocation pages say about money: SU/hour now, the burn rate, when it runs out."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from allocations import selectors
from allocations.models import FlavorFamilyRate, LedgerEntry, MeterCursor
from instances.models import Instance
from tests.fixtures.allocations import make_allocation

pytestmark = pytest.mark.django_db


def server(allocation, name, *, flavor="m3.quad", vcpus=4, status="ACTIVE", age=timedelta(days=3), **kw):
    return Instance.objects.create(allocation=allocation, project_id=allocation.openstack_project_id,
                                   server_id=f"srv-{name}", name=name, status=status, flavor_name=flavor,
                                   vcpus=vcpus, cloud_created_at=timezone.now() - age, **kw)


def charge(allocation, sus, *, start, end, resource="a"):
    return LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=-Decimal(sus), resource_id=resource,
                                      resource_name="vm", period_start=start, period_end=end)


def test_su_per_hour_now_counts_running_servers_by_state_and_family(allocation):
    # given the default rates (g3 costs double) and servers in every kind of state
    server(allocation, "a")                                   # 4 × 1
    server(allocation, "b", status="SHUTOFF")                 # 4 × 0.5
    server(allocation, "c", status="SHELVED_OFFLOADED")       # free
    server(allocation, "gpu", flavor="g3.large", vcpus=16)    # 16 × 2
    server(allocation, "gone", deleted_at=timezone.now())     # deleted: not counted
    summary = selectors.allocation_summary(allocation=allocation)
    assert FlavorFamilyRate.objects.get(family="g3").multiplier == 2
    assert summary.su_per_hour == Decimal("38.00")
    assert summary.servers_charged == 3


def test_burn_rate_is_the_last_day_of_ledger_plus_the_unmetered_tail(allocation):
    now = timezone.now()
    # metered: 48 SUs in the last day, and an old charge 3 days ago that must not count
    charge(allocation, 48, start=now - timedelta(hours=12, minutes=30), end=now - timedelta(minutes=30))
    charge(allocation, 1000, start=now - timedelta(days=3, hours=1), end=now - timedelta(days=3), resource="old")
    # a 4-vCPU server running now, charged up to 30 minutes ago
    server(allocation, "a")
    MeterCursor.objects.create(allocation=allocation, resource_id="srv-a", metered_until=now - timedelta(minutes=30))
    summary = selectors.allocation_summary(allocation=allocation)
    assert summary.last_metered_at == now - timedelta(minutes=30)
    assert summary.unmetered_sus == Decimal("2.00")  # 4 SU/h × 0.5 h
    assert summary.burn_per_day == Decimal("50.00")
    assert summary.balance == Decimal(10000 - 1048)


def test_a_charge_straddling_the_window_counts_for_its_part_inside(allocation):
    now = timezone.now()
    charge(allocation, 100, start=now - timedelta(hours=34), end=now - timedelta(hours=14))  # 10 of its 20 h inside
    summary = selectors.allocation_summary(allocation=allocation)
    assert summary.burn_per_day == Decimal("50.00")


def test_run_out_date_only_before_the_end_date(allocation):
    now = timezone.now()
    server(allocation, "big", flavor="m3.2xl", vcpus=64)
    # 64 SU/h = 1,536 SUs/day; the meter last ran two days ago, so 3,072 SUs are used but not
    # yet charged: 6,928 left last 4.5 days, long before the end date
    MeterCursor.objects.create(allocation=allocation, resource_id="srv-big", metered_until=now - timedelta(days=2))
    summary = selectors.allocation_summary(allocation=allocation)
    assert summary.burn_per_day == Decimal("1536.00")
    assert summary.unmetered_sus == Decimal("3072.00") and summary.balance_now == Decimal("6928.00")
    assert summary.runs_out_on == timezone.localdate() + timedelta(days=4)
    assert not summary.lasts_past_end


def test_a_tiny_burn_lasts_past_the_end_and_gives_no_far_off_date(allocation):
    now = timezone.now()
    charge(allocation, "0.5", start=now - timedelta(hours=2), end=now - timedelta(hours=1))
    summary = selectors.allocation_summary(allocation=allocation)
    assert summary.is_burning and summary.runs_out_on is None and summary.lasts_past_end
    assert summary.end_date == allocation.end_date


def test_nothing_running_and_nothing_recent_is_not_burning(allocation):
    now = timezone.now()
    charge(allocation, 500, start=now - timedelta(days=9), end=now - timedelta(days=8))
    server(allocation, "parked", status="SHELVED_OFFLOADED")
    summary = selectors.allocation_summary(allocation=allocation)
    assert (summary.burn_per_day, summary.su_per_hour, summary.runs_out_on) == (0, 0, None)
    assert not summary.is_burning and not summary.lasts_past_end


def test_a_server_never_metered_counts_from_when_it_was_made(allocation):
    server(allocation, "new", age=timedelta(minutes=15))
    summary = selectors.allocation_summary(allocation=allocation)
    assert summary.last_metered_at is None
    assert summary.unmetered_sus == Decimal("1.00")  # 4 SU/h × 15 min
    assert summary.burn_per_day == Decimal("1.00")  # one SU in the last day so far


def test_summaries_of_many_allocations_take_the_same_few_queries(user, django_assert_num_queries):
    allocations = [make_allocation(pi=user, project_id=f"p{i}", title=f"A{i}") for i in range(2)]
    for a in allocations:
        server(a, f"s-{a.pk}")
    with django_assert_num_queries(4):
        selectors.allocation_summaries(allocations=allocations)
    more = allocations + [make_allocation(pi=user, project_id=f"q{i}", title=f"B{i}") for i in range(6)]
    for a in more[2:]:
        server(a, f"s-{a.pk}", flavor="g3.small", status="SHUTOFF")
    with django_assert_num_queries(4):
        summaries = selectors.allocation_summaries(allocations=more)
    assert summaries[more[-1].pk].su_per_hour == Decimal("4.00")  # 4 vCPU × g3 ×2 × SHUTOFF ×0.5
