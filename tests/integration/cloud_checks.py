"""What the fault and crash tests launch, and what they check in the cloud as its admin (whose
connection never goes through the fault proxy)."""
from __future__ import annotations

from instances.models import LaunchRequest
from portal.cloud import compute
from tests.cloud_sdk import connection_get


def m3_tiny() -> compute.Flavor:
    raw = connection_get().compute.find_flavor("m3.tiny", ignore_missing=False)
    return compute.Flavor(id=raw.id, name=raw.name, vcpus=raw.vcpus, ram_mb=raw.ram, disk_gb=raw.disk,
                          extra_specs=dict(raw.extra_specs or {}))


def launch(allocation, name: str, *, count: int = 1, flavor: compute.Flavor | None = None, **options) -> LaunchRequest:
    """A launch as the allocation's PI asks for it (the same service the launch page and the API call)."""
    from instances.services import instance_launch

    image = connection_get().image.find_image("Featured-Ubuntu24", ignore_missing=False)
    return instance_launch(user=allocation.pi, allocation=allocation, flavor=flavor or m3_tiny(), image_id=image.id,
                           image_name=image.name, name=name, count=count, **options)


def servers_with_public_ip(pid: str) -> set[str]:
    """Ids of the project's servers a floating IP points at (Neutron's word, not Nova's cache)."""
    admin = connection_get()
    ports = {ip.port_id for ip in admin.network.ips(project_id=pid) if ip.port_id}
    return {p.device_id for p in admin.network.ports(project_id=pid) if p.id in ports}


def orphans(pid: str) -> list[str]:
    """Ports on no live server or router, volumes on no server, public IPs on no port."""
    admin = connection_get()
    servers = {s.id for s in admin.compute.servers(all_projects=True, project_id=pid)}
    routers = {r.id for r in admin.network.routers(project_id=pid)}
    found = [f"port {p.id} ({p.device_owner or 'no owner'}, device {p.device_id or '-'})"
             for p in admin.network.ports(project_id=pid)
             if not (p.device_owner == "network:dhcp" or p.device_id in routers
                     or (p.device_owner or "").startswith("compute:") and p.device_id in servers)]
    found += [f"volume {v.id} ({v.status})" for v in admin.block_storage.volumes(all_projects=True, project_id=pid)
              if not {a["server_id"] for a in v.attachments or []} & servers]
    found += [f"public IP {ip.floating_ip_address} on no port" for ip in admin.network.ips(project_id=pid)
              if not ip.port_id]
    return found
