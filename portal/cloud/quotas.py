"""Project quotas across Nova, Cinder and Neutron.

Quotas are one concern that spans three services; allocations set and read them together,
so they live in one module rather than being split across compute/block_storage/network.
Setting them needs the admin (portal.cloud.admin); a member reads their own project's here.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

from .connection import Scope, connection_for
from .errors import cloud_errors

log = logging.getLogger(__name__)

# Keystone unified limits name vGPUs by their Placement resource class.
GPU_LIMIT_NAME = "class:VGPU"


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
    resource: str  # what the page calls it: "vCPUs", "RAM (GB)"
    used: int
    limit: int  # -1 means unlimited
    # What the forms check it by: instances, cores, ram_gb, gpus, volume_gb, volumes, floating_ips.
    key: str = ""

    @property
    def is_unlimited(self) -> bool:
        return self.limit < 0

    @property
    def free(self) -> int | None:
        """How many more fit; None when unlimited."""
        return None if self.is_unlimited else max(0, self.limit - self.used)

    @property
    def percent(self) -> int:
        if self.limit <= 0:
            return 0 if self.limit < 0 else 100
        return min(100, round(100 * self.used / self.limit))


def project_quota_usage(*, scope: Scope) -> list[QuotaUse]:
    """Used and allowed amounts of each limited resource of the scope's project, in three calls
    (a GPU row only when the project has a vGPU limit in Keystone's unified limits)."""
    project_id = scope.project_id
    with cloud_errors():
        conn = connection_for(scope)
        compute = conn.compute.get_quota_set(project_id, usage=True)
        volume = conn.block_storage.get_quota_set(project_id, usage=True)
        network = conn.network.get_quota(project_id, details=True)

        def nova(name):
            return int((compute.usage or {}).get(name, 0)), int(getattr(compute, name))

        def cinder(name):
            return int((volume.usage or {}).get(name, 0)), int(getattr(volume, name))

        fips = network.floating_ips
        fip_used = fips.get("used", 0) if isinstance(fips, dict) else 0
        fip_limit = fips.get("limit", -1) if isinstance(fips, dict) else int(fips)
        ram_used, ram_limit = nova("ram")
        rows = [QuotaUse("Instances", *nova("instances"), key="instances"),
                QuotaUse("vCPUs", *nova("cores"), key="cores"),
                # Nova counts MB; people think in GB. Used rounds up and the limit down, so a
                # check in GB never lets through what Nova would refuse.
                QuotaUse("RAM (GB)", -(-ram_used // 1024), ram_limit // 1024 if ram_limit > 0 else ram_limit,
                         key="ram_gb")]
        if (gpus := _gpu_limit(conn, project_id)) is not None:
            rows.append(QuotaUse("GPUs (vGPU)", _gpus_used(conn), gpus, key="gpus"))
        rows += [QuotaUse("Volume storage (GB)", *cinder("gigabytes"), key="volume_gb"),
                 QuotaUse("Volumes", *cinder("volumes"), key="volumes"),
                 QuotaUse("Public IPs", int(fip_used), int(fip_limit), key="floating_ips")]
        return rows


def _gpu_limit(conn, project_id: str) -> int | None:
    """The project's vGPU limit, if the cloud sets one (Nova's unified limits); None otherwise.

    Without unified limits Nova has no GPU quota: GPUs are then bounded by the vCPUs the GPU
    flavors need. A cloud whose Keystone refuses members this read is treated the same way."""
    try:
        # The project's own limit, else the cloud-wide default (a registered limit).
        values = [lim.resource_limit for lim in
                  conn.identity.limits(project_id=project_id, resource_name=GPU_LIMIT_NAME)]
        if not values:
            values = [lim.default_limit for lim in conn.identity.registered_limits(resource_name=GPU_LIMIT_NAME)]
    except Exception as exc:  # noqa: BLE001 - the GPU row is optional; the rest of the quota stands
        log.info("vGPU limit of project %s not readable: %s", project_id, exc)
        return None
    values = [int(v) for v in values if v is not None]
    return min(values) if values else None


def _gpus_used(conn) -> int:
    """vGPUs held by the project's servers (from their embedded flavors)."""
    from .compute import _flavor

    return sum(_flavor(server.flavor).vgpus for server in conn.compute.servers(details=True))
