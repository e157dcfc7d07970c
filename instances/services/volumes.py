"""Volumes: create, attach, detach, extend, snapshot, delete; each a CloudAction row."""
from __future__ import annotations

import logging
import re

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from allocations.scopes import NoCloudAccess, member_scope
from portal.cloud import block_storage, compute
from portal.cloud.connection import Scope
from portal.cloud.errors import CloudError, CloudUnavailable, NotFound
from portal.runner import region_queue
from portal.services import status_row_enqueue, status_row_fail, status_row_progress, status_row_start

from ..models import ActionTarget, CloudAction, Instance, Volume
from .actions import PROGRESS_CALLED, ActionNotAllowed, action_scope, cloud_action_error, cloud_action_finish
from .sync import instance_refresh, volume_refresh

logger = logging.getLogger(__name__)

META_REQUEST = "portal:request"

# action -> (statuses it starts from, statuses that mean done)
VOLUME_ACTIONS = {
    "create": (None, {"available"}),
    "attach": ({"available"}, {"in-use"}),
    "detach": ({"in-use"}, {"available"}),
    "extend": ({"available", "in-use"}, {"available", "in-use"}),
    "snapshot": ({"available", "in-use"}, {"available", "in-use"}),
    "delete": ({"available", "error"}, set()),
}
LABELS = {"create": "Create", "attach": "Attach", "detach": "Detach", "extend": "Extend", "snapshot": "Snapshot",
          "delete": "Delete"}
# What the person reads when Cinder settles a volume in an error state during an action.
ERROR_WORDS = {
    ("create", "error"): "The storage service could not make the volume (it is in an error state). "
                         "Delete it and try again; if it fails again, tell the support team.",
    ("extend", "error_extending"): "The storage service could not extend the volume; its data is unchanged. "
                                   "Tell the support team, who can reset it.",
    ("delete", "error_deleting"): "The storage service could not delete the volume. Try again in a few "
                                  "minutes; if it fails again, tell the support team.",
    "*": "The storage service reported an error (the volume is now “{status}”). Tell the support team if "
         "this persists.",
}
# The label a failed action gets on the page: "Creating volume data-1 failed".
DOING = {"create": "Creating", "attach": "Attaching", "detach": "Detaching", "extend": "Extending",
         "snapshot": "Snapshotting", "delete": "Deleting"}


def volume_action_refusal(*, volume: Volume, action: str) -> str:
    if action not in VOLUME_ACTIONS or action == "create":
        return "There is no such action for a volume."
    allowed, _ = VOLUME_ACTIONS[action]
    if volume.deleted_at:
        return "The volume has been deleted."
    if allowed is not None and volume.status not in allowed:
        return f"{LABELS.get(action, action)} is not possible while the volume is {volume.status}."
    return ""


def volume_create_request(*, user, allocation, name: str, size_gb: int, snapshot_id: str = "",
                          image_id: str = "", region: str = "") -> CloudAction:
    """Record a new volume in `region` ("" the primary) and enqueue its creation on that region's queue."""
    from .. import tasks

    member_scope(user=user, allocation=allocation, creating=True, region=region)
    with transaction.atomic():
        row = CloudAction.objects.create(
            allocation=allocation, project_id=allocation.openstack_project_id, target_type=ActionTarget.VOLUME,
            target_name=name, action="create", requested_by=user, region=region,
            params={"size_gb": size_gb, "snapshot_id": snapshot_id, "image_id": image_id})
        status_row_enqueue(row=row, task=tasks.volume_action_run, queue=region_queue(region))
    return row


def volume_act(*, user, volume: Volume, action: str, params: dict | None = None) -> CloudAction:
    from .. import tasks

    params = dict(params or {})
    if reason := volume_action_refusal(volume=volume, action=action):
        raise ActionNotAllowed(reason)
    try:
        member_scope(user=user, allocation=volume.allocation, creating=action in ("attach", "extend", "snapshot"),
                     region=volume.region)
    except NoCloudAccess as exc:
        raise ActionNotAllowed(str(exc)) from None
    if action == "extend" and int(params.get("size_gb") or 0) <= volume.size_gb:
        raise ActionNotAllowed(f"The new size must be larger than {volume.size_gb} GB.")
    if action == "detach":
        params.setdefault("server_id", (volume.attached_server_ids or [""])[0])
    try:
        with transaction.atomic():
            row = CloudAction.objects.create(
                allocation=volume.allocation, project_id=volume.project_id, target_type=ActionTarget.VOLUME,
                target_id=volume.volume_id, target_name=volume.name or volume.volume_id, action=action,
                params=params, requested_by=user, region=volume.region)
            status_row_enqueue(row=row, task=tasks.volume_action_run, queue=region_queue(volume.region))
    except IntegrityError:
        raise ActionNotAllowed("Another action on this volume is still running; wait for it to finish.") from None
    return row


def _find_created(row: CloudAction, scope: Scope) -> str:
    for vol in block_storage.volume_list(scope=scope):
        if vol.metadata.get(META_REQUEST) == str(row.idempotency_key):
            return vol.id
    return ""


def _duplicates_deleted(row: CloudAction, scope: Scope) -> bool:
    """Delete any other volume made for this create: a create that timed out can get through after
    the retry, finding none yet, made its own. False while one is still being made (Cinder deletes
    only a settled volume), so the row is checked again."""
    settling = False
    for vol in block_storage.volume_list(scope=scope):
        if vol.metadata.get(META_REQUEST) != str(row.idempotency_key) or vol.id == row.target_id:
            continue
        if vol.status in ("creating", "downloading"):
            settling = True
        elif vol.status not in ("deleting", "deleted") and not vol.attachments:
            block_storage.volume_delete(scope=scope, volume_id=vol.id)
            logger.warning("action %s: deleted volume %s, a second one made for the create (a create that "
                           "timed out got through)", row.pk, vol.id)
    return not settling


def _call(row: CloudAction, scope: Scope) -> None:
    p = row.params
    if row.action == "create":
        volume_id = _find_created(row, scope) or block_storage.volume_create(
            scope=scope, name=row.target_name, size_gb=int(p["size_gb"]), snapshot_id=p.get("snapshot_id", ""),
            image_id=p.get("image_id", ""), metadata={META_REQUEST: str(row.idempotency_key)}).id
        CloudAction.objects.filter(pk=row.pk).update(target_id=volume_id)
        row.target_id = volume_id
    elif row.action == "attach":
        compute.server_volume_attach(scope=scope, server_id=p["server_id"], volume_id=row.target_id)
    elif row.action == "detach":
        compute.server_volume_detach(scope=scope, server_id=p["server_id"], volume_id=row.target_id)
    elif row.action == "extend":
        block_storage.volume_extend(scope=scope, volume_id=row.target_id, size_gb=int(p["size_gb"]))
    elif row.action == "snapshot":
        snap = block_storage.snapshot_create(scope=scope, volume_id=row.target_id,
                                             name=p.get("name") or f"{row.target_name}-snapshot")
        CloudAction.objects.filter(pk=row.pk).update(result={"snapshot_id": snap.id})
    elif row.action == "delete":
        block_storage.volume_delete(scope=scope, volume_id=row.target_id)


def _volume(row: CloudAction, scope: Scope) -> block_storage.Volume | None:
    try:
        return block_storage.volume_get(scope=scope, volume_id=row.target_id)
    except NotFound:
        return None


def _already_called(row: CloudAction, scope: Scope) -> bool:
    """Did an earlier try's call reach Cinder or Nova (its answer lost)? Then it is not made again."""
    p = row.params
    if row.action == "create":
        return False  # the create itself looks for the volume made with the request's key
    vol = _volume(row, scope)
    if vol is None:
        return row.action == "delete"
    attached = bool(p.get("server_id")) and any(a.server_id == p["server_id"] for a in vol.attachments)
    if row.action == "attach":
        return attached or vol.status in ("attaching", "reserved")
    if row.action == "detach":
        return not attached or vol.status == "detaching"
    if row.action == "extend":
        return vol.status == "extending" or vol.size_gb >= int(p["size_gb"])
    if row.action == "snapshot":
        name = p.get("name") or f"{row.target_name}-snapshot"
        since = row.started_at.timestamp() - 5 if row.started_at else 0
        return any(snap.volume_id == row.target_id and snap.name == name and snap.created_at
                   and snap.created_at.timestamp() >= since for snap in block_storage.snapshot_list(scope=scope))
    if row.action == "delete":
        return vol.status in ("deleting", "deleted")
    return False


def _check(row: CloudAction, scope: Scope) -> bool:
    """Does the volume show the action's outcome? Raises if it failed or took past the deadline."""
    _, done = VOLUME_ACTIONS[row.action]
    vol = _volume(row, scope)
    if row.action == "delete" and (vol is None or vol.status == "deleted"):
        return True
    if vol is None:
        raise NotFound("The volume disappeared during the action.")
    if vol.status.startswith("error"):
        raise CloudError(ERROR_WORDS.get((row.action, vol.status), ERROR_WORDS["*"]).format(status=vol.status))
    late = (timezone.now() - (row.started_at or timezone.now())).total_seconds() > settings.PORTAL_ACTION_DEADLINE
    if vol.status in done and (row.action != "extend" or vol.size_gb >= int(row.params["size_gb"])):
        return row.action != "create" or _duplicates_deleted(row, scope) or late
    if late:
        raise CloudError(f"The volume did not finish “{LABELS[row.action].lower()}” in time.")
    return False


def volume_action_run(*, action_id: int) -> CloudAction:
    """One pass of a volume action (portal.runner checks again while the row is not final)."""
    row = CloudAction.objects.select_related("allocation").get(pk=action_id)
    if row.is_final:
        return row
    label = LABELS[row.action].lower()
    try:
        scope = action_scope(row)
    except NoCloudAccess as exc:
        row = status_row_start(row=row, step=label)
        return status_row_fail(row=row, error=str(exc))
    error = ""
    try:
        if row.progress < PROGRESS_CALLED:
            row = status_row_start(row=row, step=label)
            if row.attempts == 1 or not _already_called(row, scope):
                _call(row, scope)
            row.refresh_from_db()
            row = status_row_progress(row=row, step=label, progress=PROGRESS_CALLED)
        if not _check(row, scope):
            return status_row_progress(row=row, step=label)
    except CloudUnavailable:
        raise  # the task's retry policy
    except CloudError as exc:
        error = cloud_action_error(row=row, exc=exc)
    return cloud_action_finish(row=row, error=error, refresh=lambda r: _refresh_mirror(r, scope))


def _refresh_mirror(row: CloudAction, scope: Scope) -> None:
    try:
        if row.target_id:
            volume_refresh(allocation=row.allocation, volume_id=row.target_id, scope=scope)
        server_id = row.params.get("server_id")
        if server_id and Instance.objects.filter(server_id=server_id).exists():
            instance_refresh(allocation=row.allocation, server_id=server_id, scope=scope)
    except CloudError:
        pass


def volume_action_dismiss(*, user, action: CloudAction) -> CloudAction:
    """Put away a failed volume action the person has read: it leaves the page, not the history."""
    if action.target_type != ActionTarget.VOLUME or action.state != "failed":
        raise ActionNotAllowed("Only a failed volume action can be dismissed.")
    if action.dismissed_at is None:
        CloudAction.objects.filter(pk=action.pk, dismissed_at__isnull=True).update(dismissed_at=timezone.now())
        action.refresh_from_db(fields=["dismissed_at"])
    return action


MOUNT_ROOT = "/media/volume"


def volume_mount_hint(*, volume: Volume, device: str) -> dict:
    """Where and how to mount an attached volume (the directory Exosphere uses, named after it)."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", volume.name or "").strip("-.") or volume.volume_id[:8]
    path = f"{MOUNT_ROOT}/{name}"
    if not re.fullmatch(r"/dev/[A-Za-z0-9/_-]+", device or ""):
        device = "/dev/vdX"  # not reported (or odd): `lsblk` inside the instance shows it
    return {"device": device, "path": path, "format": f"sudo mkfs.ext4 {device}",
            "mount": f"sudo mkdir -p {path} && sudo mount {device} {path}"}
