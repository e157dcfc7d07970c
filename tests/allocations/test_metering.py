"""The meter over a frozen clock, with the cloud faked at our gateway (portal.cloud.usage)."""
from datetime import datetime, timedelta, timezone as tz
from decimal import Decimal

import pytest

from allocations import metering
from allocations.models import LedgerEntry
from portal.cloud.usage import ServerUsage

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=tz.utc)
FLAVORS = {"m3.quad": 4, "g3.large": 16, "m3.small": 2, "r3.large": 64}


@pytest.fixture
def cloud(monkeypatch):
    """The project's servers as the gateway would report them; tests change `servers` in place."""
    servers = {}
    monkeypatch.setattr("portal.cloud.usage.server_usage_list", lambda **kw: list(servers.values()))

    def put(server_id, flavor, status, created=T0, user_id=""):
        servers[server_id] = ServerUsage(id=server_id, name=f"vm-{server_id}", status=status, flavor_name=flavor,
                                         vcpus=FLAVORS[flavor], created_at=created, user_id=user_id)
    put.servers = servers
    return put


def charged(allocation) -> Decimal:
    return -sum((e.sus for e in LedgerEntry.objects.filter(allocation=allocation, kind="usage")), Decimal(0))


def test_m3_quad_active_for_ten_hours_charges_40_su(allocation, cloud):
    cloud("a", "m3.quad", "ACTIVE")
    metering.allocation_meter(allocation=allocation, now=T0 + timedelta(hours=10))
    assert charged(allocation) == Decimal(40)
    assert allocation.balance() == Decimal(10000 - 40)


def test_g3_large_for_one_hour_charges_32_su_with_the_gpu_multiplier(allocation, cloud):
    cloud("g", "g3.large", "ACTIVE")
    metering.allocation_meter(allocation=allocation, now=T0 + timedelta(hours=1))
    entry = LedgerEntry.objects.get(allocation=allocation, kind="usage")
    assert charged(allocation) == Decimal(32) and entry.su_rate == Decimal(32) and entry.flavor == "g3.large"


def test_suspended_for_four_hours_charges_three_quarters_of_the_rate(allocation, cloud):
    cloud("s", "m3.quad", "SUSPENDED")
    metering.allocation_meter(allocation=allocation, now=T0 + timedelta(hours=4))
    assert charged(allocation) == Decimal("0.75") * 4 * 4


def test_shelved_and_shutoff_charge_by_their_state(allocation, cloud):
    cloud("shelved", "m3.quad", "SHELVED_OFFLOADED")
    cloud("off", "m3.small", "SHUTOFF")
    metering.allocation_meter(allocation=allocation, now=T0 + timedelta(hours=10))
    assert charged(allocation) == Decimal("0.5") * 2 * 10
    assert not LedgerEntry.objects.filter(resource_id="shelved").exists()


def test_running_the_meter_twice_for_one_interval_charges_once(allocation, cloud):
    cloud("a", "m3.quad", "ACTIVE")
    now = T0 + timedelta(hours=10)
    metering.allocation_meter(allocation=allocation, now=now)
    metering.allocation_meter(allocation=allocation, now=now)
    assert charged(allocation) == Decimal(40)
    assert LedgerEntry.objects.filter(kind="usage").count() == 1


def test_each_interval_is_charged_at_the_state_seen_at_its_end(allocation, cloud):
    cloud("a", "m3.quad", "ACTIVE")
    metering.allocation_meter(allocation=allocation, now=T0 + timedelta(hours=2))
    cloud("a", "m3.quad", "SHUTOFF")
    metering.allocation_meter(allocation=allocation, now=T0 + timedelta(hours=4))
    assert charged(allocation) == Decimal(4 * 2) + Decimal("0.5") * 4 * 2


def test_a_deleted_server_stops_being_charged(allocation, cloud):
    cloud("a", "m3.quad", "ACTIVE")
    metering.allocation_meter(allocation=allocation, now=T0 + timedelta(hours=1))
    del cloud.servers["a"]
    metering.allocation_meter(allocation=allocation, now=T0 + timedelta(hours=5))
    assert charged(allocation) == Decimal(4)


def test_usage_is_attributed_to_the_portal_user_who_launched_it(allocation, cloud, user):
    # Nova's user_id decides, not metadata (which anyone with the CLI can write)
    cloud("mine", "m3.quad", "ACTIVE", user_id=f"ks-{user.pk}")
    cloud("cli", "m3.quad", "ACTIVE", user_id="someone-outside")
    metering.allocation_meter(allocation=allocation, now=T0 + timedelta(hours=1))
    assert LedgerEntry.objects.get(resource_id="mine").user == user
    assert LedgerEntry.objects.get(resource_id="cli").user is None


def test_flavor_family_multiplier_is_configurable(allocation, cloud):
    from allocations.models import FlavorFamilyRate

    FlavorFamilyRate.objects.filter(family="r3").update(multiplier=Decimal("1.5"))
    cloud("big", "r3.large", "ACTIVE")
    metering.allocation_meter(allocation=allocation, now=T0 + timedelta(hours=1))
    assert charged(allocation) == Decimal(96)
