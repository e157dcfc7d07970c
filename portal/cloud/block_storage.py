"""Cinder: volumes and snapshots."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .compute import _when
from .connection import Scope, connection_for
from .errors import cloud_errors


@dataclass(frozen=True)
class Attachment:
    server_id: str
    device: str


@dataclass(frozen=True)
class Volume:
    id: str
    name: str
    size_gb: int
    status: str
    is_bootable: bool
    attachments: tuple[Attachment, ...]
    metadata: dict
    snapshot_id: str
    created_at: datetime | None
    updated_at: datetime | None


@dataclass(frozen=True)
class Snapshot:
    id: str
    name: str
    volume_id: str
    size_gb: int
    status: str
    created_at: datetime | None = None


def _volume(raw) -> Volume:
    return Volume(
        id=raw.id, name=raw.name or "", size_gb=int(raw.size or 0), status=(raw.status or "").lower(),
        is_bootable=str(raw.is_bootable).lower() == "true",
        attachments=tuple(Attachment(server_id=a.get("server_id", ""), device=a.get("device", "") or "")
                          for a in (raw.attachments or [])),
        metadata=dict(raw.metadata or {}), snapshot_id=raw.snapshot_id or "",
        created_at=_when(raw.created_at), updated_at=_when(raw.updated_at),
    )


def volume_list(*, scope: Scope) -> list[Volume]:
    with cloud_errors():
        conn = connection_for(scope)
        return [_volume(v) for v in conn.block_storage.volumes(details=True)]


def volume_get(*, scope: Scope, volume_id: str) -> Volume:
    with cloud_errors():
        return _volume(connection_for(scope).block_storage.get_volume(volume_id))


def volume_create(*, scope: Scope, name: str, size_gb: int, metadata: dict,
                  snapshot_id: str = "", image_id: str = "") -> Volume:
    attrs = {"name": name, "size": size_gb, "metadata": metadata}
    if snapshot_id:
        attrs["snapshot_id"] = snapshot_id
    if image_id:
        attrs["image_id"] = image_id
    with cloud_errors():
        return _volume(connection_for(scope).block_storage.create_volume(**attrs))


def volume_delete(*, scope: Scope, volume_id: str) -> None:
    with cloud_errors():
        connection_for(scope).block_storage.delete_volume(volume_id, ignore_missing=True)


def volume_extend(*, scope: Scope, volume_id: str, size_gb: int) -> None:
    with cloud_errors():
        connection_for(scope).block_storage.extend_volume(volume_id, size_gb)


def snapshot_create(*, scope: Scope, volume_id: str, name: str) -> Snapshot:
    with cloud_errors():
        raw = connection_for(scope).block_storage.create_snapshot(
            volume_id=volume_id, name=name, force=True)
        return Snapshot(id=raw.id, name=raw.name or "", volume_id=raw.volume_id, size_gb=int(raw.size or 0),
                        status=(raw.status or "").lower())


def snapshot_list(*, scope: Scope) -> list[Snapshot]:
    with cloud_errors():
        conn = connection_for(scope)
        return [Snapshot(id=s.id, name=s.name or "", volume_id=s.volume_id, size_gb=int(s.size or 0),
                         status=(s.status or "").lower(), created_at=_when(s.created_at))
                for s in conn.block_storage.snapshots(details=True)]


def snapshot_delete(*, scope: Scope, snapshot_id: str) -> None:
    with cloud_errors():
        connection_for(scope).block_storage.delete_snapshot(snapshot_id, ignore_missing=True)


def volume_quota_get(*, scope: Scope) -> int:
    """How many volumes the project may have (-1 = unlimited)."""
    with cloud_errors():
        return int(connection_for(scope).block_storage.get_quota_set(scope.project_id).volumes)
