from decimal import Decimal

import pytest
from django.utils import timezone

from allocations import charging
from allocations.models import LedgerEntry

pytestmark = pytest.mark.django_db


def test_launch_that_the_balance_cannot_carry_is_refused_with_the_shortfall(allocation):
    LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=Decimal(-9900), resource_id="x")
    # 100 SUs left; an m3.large (16 vCPU) for the 24 h runway needs 384.
    with pytest.raises(charging.InsufficientBalance) as refused:
        charging.preflight_launch(allocation=allocation, flavor_name="m3.large", vcpus=16)
    message = str(refused.value)
    assert "384.00 SUs" in message and "100.00 left" in message and "284.00 SUs short" in message


def test_launch_within_the_balance_returns_the_hourly_cost(allocation):
    assert charging.preflight_launch(allocation=allocation, flavor_name="g3.small", vcpus=4, count=3) == Decimal(24)


def test_a_disabled_allocation_refuses_every_launch(allocation):
    allocation.status, allocation.disabled_at = "exhausted", timezone.now()
    allocation.save()
    with pytest.raises(charging.InsufficientBalance, match="no new instances"):
        charging.preflight_launch(allocation=allocation, flavor_name="m3.tiny", vcpus=1)


@pytest.mark.parametrize("status,rate", [("ACTIVE", 8), ("SUSPENDED", 6), ("SHUTOFF", 4), ("SHELVED_OFFLOADED", 0),
                                         ("ERROR", 0), ("REBOOT", 8)])
def test_su_per_hour_follows_jetstream2_state_multipliers(db, status, rate):
    assert charging.su_per_hour(flavor_name="m3.medium", vcpus=8, status=status) == Decimal(rate)
