from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from allocations import enforcement
from allocations.models import LedgerEntry

pytestmark = pytest.mark.django_db


@pytest.fixture
def cloud(monkeypatch):
    calls = []
    monkeypatch.setattr("portal.cloud.admin.project_instances_quota_set",
                        lambda project_id, instances: calls.append(("quota", project_id, instances)))
    monkeypatch.setattr("portal.cloud.usage.server_shelve_all",
                        lambda scope: calls.append(("shelve", scope.project_id)) or [])
    monkeypatch.setattr("portal.cloud.usage.project_resources_delete",
                        lambda scope: calls.append(("delete", scope.project_id)) or {})
    return calls


def spend(allocation, sus):
    LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=Decimal(-sus), resource_id=f"s{sus}")


def test_exhausted_allocation_is_disabled_mailed_and_its_instance_quota_zeroed(allocation, cloud, mailoutbox):
    spend(allocation, 10000)
    now = timezone.now()
    assert enforcement.allocations_enforce(now=now) == {allocation.pk: "exhausted"}
    allocation.refresh_from_db()
    assert allocation.status == "exhausted" and allocation.disabled_at == now
    assert cloud == [("quota", "proj-1", 0)]
    assert "used all of its SUs" in mailoutbox[0].body and mailoutbox[0].to == [allocation.pi.email]


def test_grace_period_shelves_then_removal_period_deletes_mailing_first(allocation, cloud, mailoutbox):
    spend(allocation, 10000)
    start = timezone.now()
    enforcement.allocations_enforce(now=start)
    assert enforcement.allocations_enforce(now=start + timedelta(days=9)) == {}

    assert enforcement.allocations_enforce(now=start + timedelta(days=10)) == {allocation.pk: "shelved"}
    assert enforcement.allocations_enforce(now=start + timedelta(days=11)) == {}
    assert enforcement.allocations_enforce(now=start + timedelta(days=30)) == {allocation.pk: "purged"}
    assert [c[0] for c in cloud] == ["quota", "shelve", "delete"]
    assert [m.subject.split(": ")[0].split("] ")[-1] for m in mailoutbox] == [
        "Allocation disabled", "Shelving instances", "Deleting resources"]


def test_expired_allocation_is_disabled(allocation, cloud):
    allocation.end_date = timezone.localdate() - timedelta(days=1)
    allocation.save()
    enforcement.allocations_enforce(now=timezone.now())
    allocation.refresh_from_db()
    assert allocation.status == "expired" and allocation.disabled_at


def test_low_balance_warnings_at_25_and_10_percent_are_sent_once(allocation, cloud, mailoutbox):
    spend(allocation, 7600)
    enforcement.allocations_enforce(now=timezone.now())
    enforcement.allocations_enforce(now=timezone.now())
    spend(allocation, 1500)
    enforcement.allocations_enforce(now=timezone.now())
    subjects = [m.subject for m in mailoutbox]
    assert len(subjects) == 2 and "25% of SUs left" in subjects[0] and "10% of SUs left" in subjects[1]


def test_the_purge_waits_for_nothing_and_later_sweeps_delete_what_was_left(allocation, monkeypatch):
    left = [{"servers": 0, "floating_ips": 0, "volumes": 0, "volumes_waiting": 2},  # at the purge
            {"servers": 0, "floating_ips": 0, "volumes": 2, "volumes_waiting": 0},  # an hour later
            {"servers": 0, "floating_ips": 0, "volumes": 0, "volumes_waiting": 0}]
    calls = []
    monkeypatch.setattr("portal.cloud.admin.project_instances_quota_set", lambda project_id, instances: None)
    monkeypatch.setattr("portal.cloud.usage.server_shelve_all", lambda scope: [])
    monkeypatch.setattr("portal.cloud.usage.project_resources_delete", lambda scope: calls.append(1) or left.pop(0))
    spend(allocation, 10000)
    start = timezone.now()
    enforcement.allocations_enforce(now=start)
    enforcement.allocations_enforce(now=start + timedelta(days=10))
    assert enforcement.allocations_enforce(now=start + timedelta(days=30)) == {allocation.pk: "purged"}
    assert enforcement.allocations_enforce(now=start + timedelta(days=30, hours=1)) == {
        allocation.pk: "purged what was left"}
    assert enforcement.allocations_enforce(now=start + timedelta(days=30, hours=2)) == {}
    assert enforcement.allocations_enforce(now=start + timedelta(days=32)) == {}  # a day on, no more sweeps
    assert len(calls) == 3
