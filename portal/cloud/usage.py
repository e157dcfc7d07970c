"""What the meter and the enforcement sweep need from Nova, for a whole project at once.

These run as the portal's service identity, which holds the member role in each allocation's
project (never admin): they see exactly the project's servers, including those made outside
the portal by the CLI or Horizon.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

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
    # Nova moves updated_at at every state change: the status has held at least since then.
    updated_at: datetime | None = None


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


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
                user_id=s.user_id or "", updated_at=_parse_time(s.updated_at) if s.updated_at else None,
            ))
        return result


@dataclass(frozen=True)
class ServerAction:
    """One entry of a server's action log (stop, shelve, delete, ...) and when it took effect."""
    action: str
    request_id: str
    failed: bool  # Nova marks an action "Error" when one of its events failed
    start_time: datetime | None  # when it was asked for
    # When its last event finished (the state change happened just before); None while one still
    # runs, or when it has none (the API alone handled it, e.g. deleting a server never scheduled).
    finish_time: datetime | None
    events: int


def server_action_list(*, scope: Scope, server_id: str, changes_since: datetime | None = None) -> list[ServerAction]:
    """The server's actions that changed since `changes_since` (all of them without it), oldest
    first, each with its events' finish time. Works for deleted servers too (Nova keeps their log).
    One call for the list and one per action listed: ask only about servers that changed."""
    query = {"changes_since": changes_since.isoformat()} if changes_since else {}
    result = []
    with cloud_errors():
        conn = connection_for(scope)
        for listed in conn.compute.server_actions(server_id, **query):
            detail = conn.compute.get_server_action(listed.request_id, server_id, ignore_missing=True) or listed
            events = list(detail.events or [])
            finished = [e.finish_time for e in events]
            result.append(ServerAction(
                action=listed.action or "", request_id=listed.request_id or "",
                failed=(listed.message or "").lower() == "error",
                start_time=_parse_time(listed.start_time) if listed.start_time else None,
                finish_time=(max(_parse_time(f) for f in finished) if finished and all(finished) else None),
                events=len(events)))
    return sorted(result, key=lambda a: a.start_time.timestamp() if a.start_time else 0)


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
    """Ask the cloud to delete the project's Heat stacks, servers, floating IPs and volumes, without
    waiting: a volume still attached to a server being deleted is left for the next call
    (`volumes_waiting`), and so is a stack whose delete failed (Heat deletes what it made, networks
    and routers too; the servers it made are also deleted directly, so they stop being charged at once)."""
    counts = {"stacks": 0, "servers": 0, "floating_ips": 0, "volumes": 0, "volumes_waiting": 0}
    with cloud_errors():
        conn = connection_for(scope)
        if conn.has_service("orchestration"):
            for stack in conn.orchestration.stacks():
                if stack.status not in ("DELETE_IN_PROGRESS", "DELETE_COMPLETE"):
                    conn.orchestration.delete_stack(stack, ignore_missing=True)
                    counts["stacks"] += 1
        for s in conn.compute.servers():
            if (s.status or "").upper() == "DELETED" or s.task_state == "deleting":
                continue
            try:
                if s.is_locked:
                    conn.compute.unlock_server(s)
                conn.compute.delete_server(s, force=False)
                counts["servers"] += 1
            except sdk_exc.NotFoundException:
                pass
        for ip in conn.network.ips(project_id=scope.project_id):
            conn.network.delete_ip(ip, ignore_missing=True)
            counts["floating_ips"] += 1
        for v in conn.block_storage.volumes():
            if v.status in ("in-use", "attaching", "detaching", "deleting"):
                counts["volumes_waiting"] += v.status != "deleting"
                continue
            conn.block_storage.delete_volume(v, ignore_missing=True)
            counts["volumes"] += 1
    return counts
