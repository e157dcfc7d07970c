"""Jetstream2's default quotas and awards per allocation kind."""
from decimal import Decimal

from portal.cloud.quotas import QuotaLimits

from .models import AllocationKind

# cores / RAM / floating IPs from Jetstream2's published defaults; instances capped by cores.
QUOTAS = {
    AllocationKind.RESEARCH_CPU: dict(cores=150, ram_gb=585, floating_ips=10),
    AllocationKind.RESEARCH_GPU: dict(cores=64, ram_gb=250, floating_ips=4),
    AllocationKind.LARGE_MEMORY: dict(cores=128, ram_gb=1000, floating_ips=2),
    AllocationKind.EDUCATION: dict(cores=200, ram_gb=780, floating_ips=25),
    AllocationKind.TRIAL: dict(cores=8, ram_gb=30, floating_ips=1),
}
TRIAL_SUS = Decimal(1000)


def quota_limits_for(*, kind: str, storage_gb: int) -> QuotaLimits:
    q = QUOTAS[AllocationKind(kind)]
    return QuotaLimits(cores=q["cores"], ram_mb=q["ram_gb"] * 1024, instances=q["cores"],
                       floating_ips=q["floating_ips"], volume_gb=storage_gb)
