"""Keeping the mirror (Instance, Volume) equal to the cloud.

An incremental sync asks Nova only for servers changed since the newest change it has seen
(`changes-since`, which also returns deleted servers); a full pass every
PORTAL_SYNC_FULL_INTERVAL seconds catches anything missed. Writes are one bulk upsert.
"""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from allocations.models import KeystoneIdentity
from allocations.regions import region_health_record
from allocations.scopes import service_scope
from portal.cloud import block_storage, compute, image
from portal.cloud.connection import Scope
from portal.cloud.errors import CloudError, CloudUnavailable, NotFound

from ..models import Instance, ProjectSync, Volume

INSTANCE_FIELDS = ["allocation", "project_id", "region", "name", "status", "task_state", "flavor_name", "vcpus",
                   "ram_mb", "disk_gb", "vgpus", "gpu_fraction", "gpu_memory_gb", "image_id", "image_name", "addresses",
                   "key_name", "security_groups", "volume_ids", "metadata", "is_locked", "fault", "created_by",
                   "cloud_user_id",
                   "cloud_created_at", "cloud_updated_at", "deleted_at"]
VOLUME_FIELDS = ["allocation", "project_id", "region", "name", "size_gb", "status", "is_bootable", "attachments",
                 "metadata", "cloud_created_at", "deleted_at"]


def _image_names(scope: Scope, wanted: set[str]) -> dict[str, str]:
    """Image id -> name, from a per-project cache refreshed when an id is unknown."""
    key = f"instances:image-names:{scope.project_id}:{scope.region}"
    names = cache.get(key) or {}
    if wanted - names.keys():
        try:
            names = {i.id: i.name for i in image.image_list(scope=scope)}
        except CloudError:
            return names
        cache.set(key, names, 300)
    return names


def _creators(servers: list[compute.Server]) -> dict[str, int]:
    """Keystone user id -> portal user id: Nova's record of who made each server (metadata can be
    written by anyone with the CLI, so it decides nothing)."""
    ids = {s.user_id for s in servers} - {""}
    if not ids:
        return {}
    return dict(KeystoneIdentity.objects.filter(keystone_user_id__in=ids).values_list("keystone_user_id", "user_id"))


def _instance(allocation, server: compute.Server, images: dict, creators: dict, now, region: str) -> Instance:
    flavor = server.flavor
    deleted = server.status in ("DELETED", "SOFT_DELETED")
    return Instance(
        allocation=allocation, project_id=allocation.openstack_project_id, region=region, server_id=server.id,
        name=server.name,
        status=server.status, task_state=server.task_state, flavor_name=flavor.name, vcpus=flavor.vcpus,
        ram_mb=flavor.ram_mb, disk_gb=flavor.disk_gb, vgpus=flavor.vgpus, gpu_fraction=flavor.gpu_fraction,
        gpu_memory_gb=flavor.gpu_memory_gb, image_id=server.image_id,
        image_name=images.get(server.image_id, "") if server.image_id else "(boot volume)",
        addresses=[{"network": a.network, "addr": a.addr, "kind": a.kind} for a in server.addresses],
        key_name=server.key_name, security_groups=list(server.security_groups), volume_ids=list(server.volume_ids),
        metadata=server.metadata, is_locked=server.is_locked, fault=server.fault,
        created_by_id=creators.get(server.user_id), cloud_user_id=server.user_id,
        cloud_created_at=server.created_at, cloud_updated_at=server.updated_at,
        deleted_at=now if deleted else None,
    )


def instances_upsert(*, allocation, servers: list[compute.Server], scope: Scope | None = None) -> int:
    """Write these servers into the mirror in one statement (in the scope's region)."""
    if not servers:
        return 0
    scope = scope or service_scope(allocation=allocation)
    images = _image_names(scope, {s.image_id for s in servers if s.image_id})
    creators = _creators(servers)
    now = timezone.now()
    rows = [_instance(allocation, s, images, creators, now, scope.region) for s in servers]
    Instance.objects.bulk_create(rows, update_conflicts=True, unique_fields=["server_id"],
                                 update_fields=INSTANCE_FIELDS)
    # The meter charges by state intervals; this is its record of changes no Nova action shows.
    from allocations.metering import server_states_record
    server_states_record(project_id=allocation.openstack_project_id, servers=servers, seen_at=now,
                         region=scope.region)
    return len(rows)


def _volume(allocation, vol: block_storage.Volume, region: str) -> Volume:
    return Volume(allocation=allocation, project_id=allocation.openstack_project_id, region=region, volume_id=vol.id,
                  name=vol.name, size_gb=vol.size_gb, status=vol.status, is_bootable=vol.is_bootable,
                  attachments=[{"server_id": a.server_id, "device": a.device} for a in vol.attachments],
                  metadata=vol.metadata, cloud_created_at=vol.created_at,
                  deleted_at=timezone.now() if vol.status == "deleted" else None)


def volumes_upsert(*, allocation, volumes: list[block_storage.Volume], complete: bool = False,
                   region: str = "") -> int:
    """Write these volumes (of `region`); with `complete`, every other mirrored volume of the
    project in that region is gone."""
    project_id = allocation.openstack_project_id
    if volumes:
        Volume.objects.bulk_create([_volume(allocation, v, region) for v in volumes], update_conflicts=True,
                                   unique_fields=["volume_id"], update_fields=VOLUME_FIELDS)
    if complete:
        (Volume.objects.filter(project_id=project_id, region=region, deleted_at__isnull=True)
         .exclude(volume_id__in=[v.id for v in volumes]).update(deleted_at=timezone.now(), status="deleted"))
    return len(volumes)


def project_sync(*, allocation, full: bool = False, region: str = "") -> dict:
    """Bring the mirror of the allocation's project in `region` ("" the primary) up to date;
    returns what it did. What the region answered (or not) is recorded as its health."""
    project_id = allocation.openstack_project_id
    scope = service_scope(allocation=allocation, region=region)
    state, _ = ProjectSync.objects.get_or_create(project_id=project_id, region=region)
    now = timezone.now()
    full = full or state.changes_since is None or state.last_full_sync_at is None or (
        now - state.last_full_sync_at > timedelta(seconds=settings.PORTAL_SYNC_FULL_INTERVAL))
    try:
        servers = compute.server_list(scope=scope, changes_since=None if full else state.changes_since)
        volumes = block_storage.volume_list(scope=scope)
    except CloudError as exc:
        ProjectSync.objects.filter(pk=state.pk).update(last_error=str(exc))
        if isinstance(exc, CloudUnavailable):
            region_health_record(key=region, error=str(exc))
        raise
    region_health_record(key=region)
    with transaction.atomic():
        instances_upsert(allocation=allocation, servers=servers, scope=scope)
        if full:
            (Instance.objects.filter(project_id=project_id, region=region, deleted_at__isnull=True)
             .exclude(server_id__in=[s.id for s in servers]).update(deleted_at=now, status="DELETED"))
        volumes_upsert(allocation=allocation, volumes=volumes, complete=True, region=region)
        newest = max((s.updated_at for s in servers if s.updated_at), default=None)
        fields = {"last_sync_at": now, "last_error": ""}
        if newest and (state.changes_since is None or newest > state.changes_since or full):
            fields["changes_since"] = newest
        elif full and state.changes_since is None:
            fields["changes_since"] = now - timedelta(seconds=settings.PORTAL_SYNC_CLOCK_SKEW)
        if full:
            fields["last_full_sync_at"] = now
        ProjectSync.objects.filter(pk=state.pk).update(**fields)
    return {"full": full, "servers": len(servers), "volumes": len(volumes)}


def instance_refresh(*, allocation, server_id: str, scope: Scope) -> Instance | None:
    """Re-read one server after the portal acted on it (as whoever acted); None if it is gone."""
    try:
        server = compute.server_get(scope=scope, server_id=server_id)
    except NotFound:
        Instance.objects.filter(server_id=server_id).update(deleted_at=timezone.now(), status="DELETED",
                                                            task_state="")
        return None
    instances_upsert(allocation=allocation, servers=[server], scope=scope)
    return Instance.objects.get(server_id=server_id)


def volume_refresh(*, allocation, volume_id: str, scope: Scope) -> Volume | None:
    try:
        vol = block_storage.volume_get(scope=scope, volume_id=volume_id)
    except NotFound:
        Volume.objects.filter(volume_id=volume_id).update(deleted_at=timezone.now(), status="deleted")
        return None
    volumes_upsert(allocation=allocation, volumes=[vol], region=scope.region)
    return Volume.objects.get(volume_id=volume_id)
