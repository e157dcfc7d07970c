"""Which flavors an allocation may boot, by its kind (Jetstream2: GPU and large-memory flavors
only for allocations awarded them)."""
from __future__ import annotations

from fnmatch import fnmatchcase

from .models import AllocationKind, KindFlavorAccess

DEFAULTS = {
    AllocationKind.RESEARCH_CPU: "m3.*",
    AllocationKind.LARGE_MEMORY: "m3.*, r3.*",
    AllocationKind.RESEARCH_GPU: "m3.*, g3.*",
    AllocationKind.EDUCATION: "m3.*, g3.small",
    AllocationKind.TRIAL: "m3.*",
}


def patterns_for(kind: str) -> list[str]:
    row = KindFlavorAccess.objects.filter(kind=kind).first()
    raw = row.flavors if row else DEFAULTS.get(kind, "m3.*")
    return [p.strip() for p in raw.split(",") if p.strip()]


def flavor_allowed(*, kind: str, flavor_name: str) -> bool:
    return any(fnmatchcase(flavor_name, pattern) for pattern in patterns_for(kind))
