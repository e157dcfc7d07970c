"""Project quotas across Nova, Cinder and Neutron.

Quotas are one concern that spans three services; allocations set and read them together,
so they live in one module rather than being split across compute/block_storage/network.
Setting them needs the admin (portal.cloud.admin); a member reads their own project's here.
"""
from __future__ import annotations

from dataclasses import dataclass

from .connection import Scope, connection_for
from .errors import cloud_errors


@dataclass(frozen=True)
class QuotaLimits:
    cores: int
    ram_mb: int
    instances: int
    floating_ips: int
    volume_gb: int
    volumes: int = 100
    snapshots: int = 100


@dataclass(frozen=True)
class QuotaUse:
    resource: str
    used: int
    limit: int  # -1 means unlimited

    @property
    def percent(self) -> int:
        if self.limit <= 0:
            return 0 if self.limit < 0 else 100
        return min(100, round(100 * self.used / self.limit))


def project_quota_usage(*, scope: Scope) -> list[QuotaUse]:
    """Used and allowed amounts of each limited resource of the scope's project, in three calls."""
    project_id = scope.project_id
    with cloud_errors():
        conn = connection_for(scope)
        compute = conn.compute.get_quota_set(project_id, usage=True)
        volume = conn.block_storage.get_quota_set(project_id, usage=True)
        network = conn.network.get_quota(project_id, details=True)

        def nova(name):
            usage = (compute.usage or {}).get(name, 0)
            return int(usage), int(getattr(compute, name) if name != "ram" else compute.ram)

        def cinder(name):
            return int((volume.usage or {}).get(name, 0)), int(getattr(volume, name))

        fips = network.floating_ips
        fip_used = fips.get("used", 0) if isinstance(fips, dict) else 0
        fip_limit = fips.get("limit", -1) if isinstance(fips, dict) else int(fips)
        rows = [("Instances", *nova("instances")), ("vCPUs", *nova("cores")), ("RAM (GB)", *nova("ram")),
                ("Volume storage (GB)", *cinder("gigabytes")), ("Volumes", *cinder("volumes")),
                ("Floating IPs", int(fip_used), int(fip_limit))]
        result = []
        for name, used, limit in rows:
            if name == "RAM (GB)":
                used, limit = used // 1024, (limit // 1024 if limit > 0 else limit)
            result.append(QuotaUse(resource=name, used=used, limit=limit))
        return result
