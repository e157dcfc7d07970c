"""Jetstream2's charging rules: 1 SU = 1 vCPU-hour, times a flavor and a state multiplier.

Used by the meter, the launch page's cost preview and the launch/resize/unshelve preflight,
so the price a user is shown is the price they are charged.
"""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings

from .models import Allocation, FlavorFamilyRate

# Server status -> fraction of the flavor's rate charged while in it.
STATE_MULTIPLIERS: dict[str, Decimal] = {
    "ACTIVE": Decimal("1"),
    "SUSPENDED": Decimal("0.75"),
    "PAUSED": Decimal("0.75"),
    "SHUTOFF": Decimal("0.5"),
    "STOPPED": Decimal("0.5"),
    "SHELVED": Decimal("0"),
    "SHELVED_OFFLOADED": Decimal("0"),
    "ERROR": Decimal("0"),
    "BUILD": Decimal("0"),
    "DELETED": Decimal("0"),
}
# Transitional states (REBOOT, RESIZE, VERIFY_RESIZE, ...) are charged as running.
DEFAULT_STATE_MULTIPLIER = Decimal("1")


class InsufficientBalance(Exception):
    """A launch, resize or unshelve the allocation's balance cannot carry. `str()` says by how much;
    `shortfall` is the SUs missing (None when the allocation cannot launch at all)."""

    def __init__(self, message: str, *, shortfall: Decimal | None = None):
        super().__init__(message)
        self.shortfall = shortfall


def flavor_family(flavor_name: str) -> str:
    return flavor_name.split(".", 1)[0] if "." in flavor_name else flavor_name


def family_multiplier(flavor_name: str) -> Decimal:
    rate = (FlavorFamilyRate.objects.filter(family=flavor_family(flavor_name))
            .values_list("multiplier", flat=True).first())
    return rate if rate is not None else Decimal("1")


def state_multiplier(status: str) -> Decimal:
    return STATE_MULTIPLIERS.get((status or "").upper(), DEFAULT_STATE_MULTIPLIER)


def family_rates_all() -> dict[str, Decimal]:
    """Every family's multiplier in one query, for pages that price many servers at once."""
    return dict(FlavorFamilyRate.objects.values_list("family", "multiplier"))


def su_per_hour(*, flavor_name: str, vcpus: int, status: str = "ACTIVE",
                family_rates: dict[str, Decimal] | None = None) -> Decimal:
    """SUs an instance of this flavor costs per hour in this state. `family_rates` (from
    family_rates_all) saves the query per call when many servers are priced."""
    family = (family_rates.get(flavor_family(flavor_name), Decimal("1")) if family_rates is not None
              else family_multiplier(flavor_name))
    return Decimal(vcpus) * family * state_multiplier(status)


def preflight_launch(*, allocation: Allocation, flavor_name: str, vcpus: int, count: int = 1,
                     hours: int | None = None) -> Decimal:
    """Refuse work the balance cannot carry for the minimum runway; return the hourly cost.

    The runway (default 24 h) is the time the new instances must be able to run on what is left.
    """
    if not allocation.is_usable:
        raise InsufficientBalance(
            f"The allocation “{allocation.title}” is {allocation.get_status_display().lower()}"
            f"{' and disabled' if allocation.disabled_at else ''}: no new instances can be started in it.")
    hours = settings.PORTAL_MIN_RUNWAY_HOURS if hours is None else hours
    hourly = su_per_hour(flavor_name=flavor_name, vcpus=vcpus) * count
    needed = hourly * hours
    balance = allocation.balance()
    if needed > balance:
        shortfall = needed - balance
        raise InsufficientBalance(
            f"Not enough SUs: {count} × {flavor_name} costs {hourly:.2f} SU/hour, so {hours} hours need "
            f"{needed:,.2f} SUs, but the allocation has {max(balance, Decimal(0)):,.2f} left "
            f"({shortfall:,.2f} SUs short). Ask your PI to request more SUs, or pick a smaller flavor.",
            shortfall=shortfall.quantize(Decimal("0.01")))
    return hourly
