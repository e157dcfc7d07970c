"""Regions (issue 13) with the cloud faked at our gateway: which regions an allocation may use, the
meter of one region never taking another's servers for gone, the queues, the list's region column,
filter and banner. tests/integration/test_regions.py does it against two real regions."""
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from allocations import metering
from allocations.models import AllocationRegion, Cloud, LedgerEntry
from allocations.regions import (
    allocation_region_keys,
    allocation_regions,
    failing_regions,
    region_enable,
    region_for_request,
    region_health_record,
)
from allocations.scopes import NoCloudAccess, member_scope
from portal.cloud.usage import ServerUsage
from portal.runner import region_queue

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def primary_is_region_one(monkeypatch):
    monkeypatch.setattr("allocations.regions.primary_region", lambda: "RegionOne")


@pytest.fixture
def two_regions(allocation):
    Cloud.objects.all().delete()  # a migration seeds the primary
    Cloud.objects.create(name="RegionOne", os_cloud="x", region_name="RegionOne", is_primary=True)
    Cloud.objects.create(name="RegionTwo", os_cloud="x", region_name="RegionTwo")
    return AllocationRegion.objects.create(allocation=allocation, region_name="RegionTwo", state="ready")


def test_an_allocation_has_the_primary_and_only_the_regions_set_up_for_it(allocation, two_regions):
    assert allocation_region_keys(allocation=allocation) == ["", "RegionTwo"]
    AllocationRegion.objects.filter(pk=two_regions.pk).update(state="pending")
    assert allocation_region_keys(allocation=allocation) == [""]
    assert [r.name for r in allocation_regions(allocation=allocation)] == ["RegionOne"]


def test_making_something_in_a_region_the_allocation_is_not_enabled_in_is_refused(allocation, user, two_regions):
    assert member_scope(user=user, allocation=allocation, creating=True, region="RegionTwo").region == "RegionTwo"
    with pytest.raises(NoCloudAccess, match="not enabled in the region RegionThree"):
        member_scope(user=user, allocation=allocation, creating=True, region="RegionThree")


def test_a_page_takes_only_a_region_of_the_allocation_from_the_request(allocation, two_regions):
    regions = allocation_regions(allocation=allocation)
    factory = RequestFactory()
    assert region_for_request(factory.get("/?region=RegionTwo"), regions) == "RegionTwo"
    assert region_for_request(factory.get("/?region=RegionOne"), regions) == ""  # the primary's key
    assert region_for_request(factory.get("/?region=Elsewhere"), regions) == ""


def test_each_region_but_the_primary_has_queues_of_its_own(settings):
    settings.PORTAL_REGION_QUEUE_PREFIX = ""
    assert region_queue("") == settings.PORTAL_CLOUD_QUEUE and region_queue("", "sync") == settings.PORTAL_SYNC_QUEUE
    assert (region_queue("RegionTwo"), region_queue("RegionTwo", "sync")) == ("cloud.RegionTwo", "sync.RegionTwo")


def test_enabling_the_primary_or_an_unknown_region_is_refused(allocation, two_regions):
    from django.core.exceptions import ValidationError

    for name in ("RegionOne", "Nowhere"):
        row = AllocationRegion(allocation=allocation, region_name=name)
        with pytest.raises(ValidationError):
            region_enable(row=row)


def test_a_region_that_does_not_answer_is_flagged_until_it_does_again(two_regions):
    region_health_record(key="RegionTwo", error="Compute unavailable")
    first = failing_regions()["RegionTwo"].failing_since
    region_health_record(key="RegionTwo", error="Compute unavailable")
    assert failing_regions()["RegionTwo"].failing_since == first  # since the first failure
    assert "" not in failing_regions()
    region_health_record(key="RegionTwo")
    assert failing_regions() == {}


def test_the_meter_of_one_region_does_not_take_anothers_servers_for_gone(allocation, two_regions, monkeypatch,
                                                                         time_machine):
    listed = {"": [], "RegionTwo": []}
    monkeypatch.setattr("portal.cloud.usage.server_usage_list", lambda *, scope: list(listed[scope.region]))
    monkeypatch.setattr("portal.cloud.usage.server_action_list", lambda **kw: [])

    def server(sid):
        return ServerUsage(id=sid, name=sid, status="ACTIVE", flavor_name="m3.quad", vcpus=4, created_at=T0,
                           user_id="", updated_at=T0)
    listed[""].append(server("east"))
    listed["RegionTwo"].append(server("west"))
    for hours in (1, 2):
        when = T0 + timedelta(hours=hours)
        time_machine.move_to(when, tick=False)
        for region in ("", "RegionTwo"):
            metering.allocation_meter(allocation=allocation, now=when, region=region)
    usage = {}
    for entry in LedgerEntry.objects.filter(allocation=allocation, kind="usage"):
        usage[entry.resource_id] = usage.get(entry.resource_id, Decimal(0)) - entry.sus
    assert usage == {"east": Decimal(8), "west": Decimal(8)}  # 2 hours of an m3.quad each, no more, no less
    assert allocation.balance() == Decimal(10000 - 16)  # one balance


def test_the_list_shows_the_region_of_each_row_filters_by_it_and_flags_a_region_that_does_not_answer(
        user_client, allocation, two_regions):
    from django.core.cache import cache

    from instances.models import Instance

    for name, region in (("east", ""), ("west", "RegionTwo")):
        Instance.objects.create(allocation=allocation, project_id=allocation.openstack_project_id, region=region,
                                server_id=f"srv-{name}", name=name, status="ACTIVE", flavor_name="m3.quad",
                                cloud_created_at=timezone.now())
    cache.delete("instances:regions")
    body = user_client.get(reverse("instances:list")).content.decode()
    assert 'data-testid="region-filter"' in body
    assert body.count('data-testid="region">RegionOne') == 1 and body.count('data-testid="region">RegionTwo') == 1
    only = user_client.get(reverse("instances:list") + "?region=RegionTwo").content.decode()
    assert "srv-west" in only and "srv-east" not in only
    primary = user_client.get(reverse("instances:list") + "?region=RegionOne").content.decode()
    assert "srv-east" in primary and "srv-west" not in primary

    region_health_record(key="RegionTwo", error="Compute unavailable")
    cache.delete("instances:regions")
    body = user_client.get(reverse("instances:list")).content.decode()
    assert "The region RegionTwo has not answered" in body
    assert body.count('data-testid="region-stale"') == 1


def test_the_refresh_adopts_the_seeded_primary_and_adds_the_catalogs_regions(monkeypatch):
    from allocations.regions import region_list, regions_refresh
    from portal.cloud import identity

    assert Cloud.objects.filter(is_primary=True, region_name="").exists()  # as the migration seeded it
    catalog = [identity.CatalogService(type="compute", name="nova", region=r, url=f"http://{r}") for r in
               ("RegionOne", "RegionTwo")] + [identity.CatalogService(type="identity", name="k", region="RegionThree",
                                                                     url="http://k")]
    monkeypatch.setattr(identity, "catalog_list", lambda **kw: catalog)
    regions_refresh()
    assert sorted(Cloud.objects.values_list("region_name", "is_primary")) == [("RegionOne", True),
                                                                              ("RegionTwo", False)]
    assert [(r.key, r.name) for r in region_list()] == [("", "RegionOne"), ("RegionTwo", "RegionTwo")]
    region_health_record(key="", error="Compute unavailable")
    assert list(failing_regions()) == [""]


def test_the_beat_meters_the_primary_and_sends_each_other_region_to_its_own_queue(allocation, two_regions,
                                                                                   monkeypatch, settings):
    from allocations import tasks

    settings.PORTAL_REGION_QUEUE_PREFIX = ""
    sent, metered = [], []
    monkeypatch.setattr(tasks.meter_region, "apply_async", lambda args, queue: sent.append((args, queue)))
    monkeypatch.setattr(metering, "allocation_meter", lambda **kw: metered.append(kw["region"]))
    tasks.meter_allocations()
    assert sent == [(("RegionTwo",), "cloud.RegionTwo")] and metered == [""]
    tasks.meter_region("RegionTwo")
    assert metered == ["", "RegionTwo"]


def test_the_volumes_page_shows_and_filters_by_region(user_client, allocation, two_regions):
    from django.core.cache import cache

    from instances.models import Volume

    for name, region in (("data-east", ""), ("data-west", "RegionTwo")):
        Volume.objects.create(allocation=allocation, project_id=allocation.openstack_project_id, region=region,
                              volume_id=f"vol-{name}", name=name, size_gb=10, status="available")
    cache.delete("instances:regions")
    body = user_client.get(reverse("instances:volumes")).content.decode()
    assert 'data-testid="region-filter"' in body and "data-east" in body and "data-west" in body
    only = user_client.get(reverse("instances:volumes") + "?region=RegionTwo").content.decode()
    assert "data-west" in only and "data-east" not in only


def test_an_action_on_a_server_or_volume_runs_in_its_own_region(allocation, user, two_regions):
    from instances.models import CloudAction
    from instances.services.actions import action_scope

    row = CloudAction.objects.create(allocation=allocation, project_id=allocation.openstack_project_id,
                                     target_id="srv-west", action="stop", requested_by=user, region="RegionTwo")
    assert action_scope(row).region == "RegionTwo"


def test_the_public_ip_and_security_group_pages_act_in_the_region_picked(user_client, allocation, two_regions,
                                                                       monkeypatch):
    from portal.cloud import network

    calls = []

    def record(name, answer):
        def fake(*, scope, **kwargs):
            calls.append((name, scope.region))
            return answer
        monkeypatch.setattr(network, name, fake)

    group = network.SecurityGroup("sg-2", "web", "", ())
    record("floating_ip_list", [])
    record("network_list", [network.Network("pub", "public", True, False, "admin", ())])
    record("floating_ip_create", network.FloatingIP("fip-2", "198.51.100.7", "DOWN", "", "", "pub"))
    record("security_group_list", [group])
    record("security_group_delete", None)
    page = user_client.get(reverse("instances:floating_ips"), {"project": allocation.pk, "region": "RegionTwo"})
    body = page.content.decode()
    assert 'data-testid="region-picker"' in body and '<option value="RegionTwo" selected>' in body
    assert '<input type="hidden" name="region" value="RegionTwo">' in body  # the allocate form stays there
    answer = user_client.post(reverse("instances:floating_ips") + f"?project={allocation.pk}",
                              {"project": allocation.pk, "region": "RegionTwo"})
    assert answer.url.endswith("&region=RegionTwo")
    user_client.post(reverse("instances:security_group_delete", args=["sg-2"]),
                     {"project": allocation.pk, "region": "RegionTwo"})
    assert calls == [("floating_ip_list", "RegionTwo"), ("network_list", "RegionTwo"),
                     ("floating_ip_create", "RegionTwo"), ("security_group_list", "RegionTwo"),
                     ("security_group_delete", "RegionTwo")]
    calls.clear()  # a region the allocation is not enabled in is not taken: the primary is shown
    user_client.get(reverse("instances:security_groups"), {"project": allocation.pk, "region": "RegionNine"})
    assert calls == [("security_group_list", "")]


def test_deleting_a_key_removes_its_nova_keypair_in_every_region(user, allocation, two_regions, monkeypatch):
    from instances.models import SSHKey
    from instances.services.keys import ssh_key_delete
    from portal.cloud import compute

    public = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop"
    key = SSHKey.objects.create(user=user, name="laptop", public_key=public, fingerprint="SHA256:abcdefgh")
    deleted = []
    monkeypatch.setattr(compute, "keypair_get", lambda *, scope, name: compute.Keypair(name, "fp", public)
                        if name == "laptop" else None)
    monkeypatch.setattr(compute, "keypair_delete", lambda *, scope, name: deleted.append((scope.region, name)))
    ssh_key_delete(key=key)
    assert deleted == [("", "laptop"), ("RegionTwo", "laptop")]
    assert not SSHKey.objects.exists()
