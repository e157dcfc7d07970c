"""What the meter and the enforcement sweep need from Nova, for a whole project at once.

These run as the portal's service identity, which holds the member role in each allocation's
project (never admin): they see exactly the project's servers, including those made outside
the portal by the CLI or Horizon.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from openstack import exceptions as sdk_exc

from .connection import Scope, connection_for
from .errors import cloud_errors


@dataclass(frozen=True)
class ServerUsage:
    id: str
    name: str
    status: str
    flavor_name: str
    vcpus: int
    created_at: datetime
    user_id: str  # the Keystone user that made the server


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def server_usage_list(*, scope: Scope) -> list[ServerUsage]:
    with cloud_errors():
        conn = connection_for(scope)
        result = []
        for s in conn.compute.servers(details=True):
            flavor = s.flavor or {}
            result.append(ServerUsage(
                id=s.id, name=s.name, status=(s.status or "").upper(),
                flavor_name=flavor.get("original_name") or flavor.get("name") or "",
                vcpus=int(flavor.get("vcpus") or 0), created_at=_parse_time(s.created_at),
                user_id=s.user_id or "",
            ))
        return result


def server_shelve_all(*, scope: Scope) -> list[str]:
    """Shelve every server of the project that can be shelved; returns their ids."""
    shelvable = {"ACTIVE", "SHUTOFF", "SUSPENDED", "PAUSED"}
    shelved = []
    with cloud_errors():
        conn = connection_for(scope)
        for s in conn.compute.servers(details=True):
            if (s.status or "").upper() in shelvable:
                if s.is_locked:
                    conn.compute.unlock_server(s)
                conn.compute.shelve_server(s)
                shelved.append(s.id)
    return shelved


def project_resources_delete(*, scope: Scope) -> dict[str, int]:
    """Delete the project's servers, floating IPs and (once detached) volumes."""
    counts = {"servers": 0, "floating_ips": 0, "volumes": 0}
    with cloud_errors():
        conn = connection_for(scope)
        servers = list(conn.compute.servers())
        for s in servers:
            try:
                if s.is_locked:
                    conn.compute.unlock_server(s)
                conn.compute.delete_server(s, force=False)
                counts["servers"] += 1
            except sdk_exc.NotFoundException:
                pass
        for s in servers:
            conn.compute.wait_for_delete(s, wait=120)
        for ip in conn.network.ips(project_id=scope.project_id):
            conn.network.delete_ip(ip, ignore_missing=True)
            counts["floating_ips"] += 1
        for v in conn.block_storage.volumes():
            conn.block_storage.delete_volume(v, ignore_missing=True)
            counts["volumes"] += 1
    return counts
