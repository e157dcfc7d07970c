"""Regions: the primary cloud and the regional clouds beside it, in one Keystone.

Every region the portal knows is a `Cloud` row, refreshed from Keystone's catalog (the regions with a
compute endpoint). An allocation lives on the primary region; an admin enables more for it
(`AllocationRegion`, with quotas there). Rows of the mirror, launches and actions carry their region,
"" standing for the primary (so a deployment that names its primary region differently, or not at
all, needs no rewrite of its rows). SUs are one balance whatever the region.

Each region's health is what the portal last heard from it: the mirror sync of a region records a
success or a failure here, and pages flag the rows of a region that does not answer.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from portal import services as portal_services
from portal.cloud import identity
from portal.cloud.connection import primary_region

from .models import Allocation, AllocationRegion, Cloud

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Region:
    key: str  # "" for the primary, else the region's name as Keystone's catalog has it
    name: str  # as shown: the region's name ("RegionOne" for the primary too)
    is_primary: bool
    failing_since: datetime | None = None


def region_key(name: str) -> str:
    """The key rows store for a region's name: "" for the primary."""
    name = (name or "").strip()
    return "" if not name or name == primary_region() else name


def region_name(key: str) -> str:
    return key or primary_region() or "primary"


def regions_refresh() -> list[Cloud]:
    """Record the regions of Keystone's catalog that offer compute (as the service user); the
    primary is the region of the portal's service cloud. Regions that left the catalog stay (their
    rows may still be in the mirror) until an admin deletes them."""
    from django.conf import settings

    names = sorted({s.region for s in identity.catalog_list() if s.type == "compute" and s.region})
    primary = primary_region()
    if primary and primary not in names:
        names.insert(0, primary)
    with transaction.atomic():
        seeded = Cloud.objects.filter(is_primary=True).first()  # the row a migration seeded, without a region
        if seeded and seeded.region_name != primary and not Cloud.objects.filter(region_name=primary).exists():
            Cloud.objects.filter(pk=seeded.pk).update(region_name=primary, name=primary or seeded.name)
        for name in names:
            Cloud.objects.get_or_create(region_name=name,
                                        defaults={"name": name, "os_cloud": settings.PORTAL_SERVICE_CLOUD})
        Cloud.objects.filter(is_primary=True).exclude(region_name=primary).update(is_primary=False)
        Cloud.objects.filter(region_name=primary).update(is_primary=True)
    return list(Cloud.objects.order_by("-is_primary", "region_name"))


def _region(cloud: Cloud | None, key: str) -> Region:
    return Region(key=key, name=region_name(key), is_primary=not key,
                  failing_since=cloud.failing_since if cloud else None)


def _key(cloud: Cloud) -> str:
    return "" if cloud.is_primary else region_key(cloud.region_name)


def region_list() -> list[Region]:
    """Every region the portal knows, the primary first (the primary even before a refresh)."""
    clouds = {_key(c): c for c in Cloud.objects.all()}
    keys = [""] + sorted(k for k in clouds if k)
    return [_region(clouds.get(k), k) for k in keys]


def allocation_region_keys(*, allocation: Allocation) -> list[str]:
    """The regions where the allocation may run servers now: the primary, then those enabled and set up."""
    ready = allocation.regions.filter(state=AllocationRegion.State.READY).values_list("region_name", flat=True)
    return [""] + sorted({region_key(n) for n in ready} - {""})


def allocation_regions(*, allocation: Allocation) -> list[Region]:
    keys = allocation_region_keys(allocation=allocation)
    names = [region_name(k) for k in keys]
    clouds = {_key(c): c for c in Cloud.objects.filter(Q(region_name__in=names) | Q(is_primary=True))}
    return [_region(clouds.get(k), k) for k in keys]


def failing_regions() -> dict[str, Region]:
    """The regions that did not answer the portal at their last sync, by key."""
    return {_key(c): _region(c, _key(c)) for c in Cloud.objects.filter(failing_since__isnull=False)}


def region_health_record(*, key: str, error: str = "") -> None:
    """What a sync of the region just heard: nothing wrong (`error` empty) or why it failed."""
    from django.conf import settings

    name, now = region_name(key), timezone.now()
    cloud = (Cloud.objects.filter(is_primary=True) if not key else Cloud.objects.filter(region_name=name)).first()
    if cloud is None:
        cloud, _ = Cloud.objects.get_or_create(region_name=name, defaults={
            "name": name, "os_cloud": settings.PORTAL_SERVICE_CLOUD,
            "is_primary": not key and not Cloud.objects.filter(is_primary=True).exists()})
    if error:
        Cloud.objects.filter(pk=cloud.pk, failing_since__isnull=True).update(failing_since=now)
        Cloud.objects.filter(pk=cloud.pk).update(last_error=error[:500])
    elif cloud.failing_since or cloud.last_ok_at is None or (now - cloud.last_ok_at).total_seconds() > 30:
        Cloud.objects.filter(pk=cloud.pk).update(failing_since=None, last_error="", last_ok_at=now)


def region_enable(*, row: AllocationRegion, by=None):
    """Set an enabled region's quotas up in the background (its status row on the allocation)."""
    from . import tasks

    if region_key(row.region_name) == "":
        raise ValidationError("Every allocation has the primary region already.")
    known = {c.region_name for c in Cloud.objects.all()}
    if row.region_name not in known:
        raise ValidationError(f"No region named {row.region_name} is known; known: {', '.join(sorted(known))}.")
    operation = portal_services.operation_create(kind="allocation.region", target=f"allocation:{row.allocation_id}",
                                                 user=by, params={"region": row.region_name})
    portal_services.status_row_enqueue(row=operation, task=tasks.provision_region)
    return operation


def region_for_request(request, regions: list[Region]) -> str:
    """The region a page was asked for (`region`, in the query or the form), by key, if it is one of
    `regions` (those of the allocation); else the primary. Never a name the person typed unchecked."""
    asked = region_key(request.POST.get("region") or request.GET.get("region") or "")
    return asked if asked in {r.key for r in regions} else ""
