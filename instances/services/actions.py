"""Actions on servers: what is offered for a server's state and flavor, and running them."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from allocations.charging import preflight_launch, su_per_hour
from allocations.flavor_access import flavor_allowed
from allocations.scopes import NoCloudAccess, member_scope
from portal.cloud import compute, network
from portal.cloud.connection import Scope
from portal.cloud.errors import CloudError, CloudUnavailable, NotFound, NoValidHost
from portal.runner import give_up_words, region_queue, stale_rows_resume
from portal.services import (
    status_row_enqueue,
    status_row_fail,
    status_row_progress,
    status_row_start,
    status_row_succeed,
)

from ..models import ActionTarget, CloudAction, Instance, gpu_share_label
from .public_ips import floating_ip_duplicates_release, floating_ip_for_tag
from .sync import instance_refresh

logger = logging.getLogger(__name__)

RUNNING = frozenset({"ACTIVE"})
STOPPED = frozenset({"SHUTOFF"})
SHELVED = frozenset({"SHELVED", "SHELVED_OFFLOADED"})


class ActionNotAllowed(Exception):
    """The action does not apply to the instance now; `str()` says why, for the page."""


@dataclass(frozen=True)
class ActionSpec:
    label: str
    from_statuses: frozenset
    done_statuses: frozenset  # finished when Nova shows one of these and no task is running
    confirm: str = ""  # a question to confirm with, for destructive actions
    style: str = "outline-secondary"
    gpu: bool = True  # offered for GPU flavors
    whole_gpu: bool = True  # offered for whole-GPU flavors
    when_locked: bool = False


# Actions that make something new in the project (only an active allocation allows them).
CREATING = frozenset({"start", "unshelve", "resize", "resume", "image_create", "floating_ip_assign"})

ANY = frozenset({"ACTIVE", "SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED", "SHELVED_OFFLOADED", "ERROR",
                 "VERIFY_RESIZE"})
ACTIONS: dict[str, ActionSpec] = {
    "start": ActionSpec("Start", STOPPED, RUNNING, style="outline-success"),
    "stop": ActionSpec("Stop", RUNNING, STOPPED),
    "reboot_soft": ActionSpec("Reboot", RUNNING, RUNNING),
    "reboot_hard": ActionSpec("Hard reboot", RUNNING | STOPPED, RUNNING,
                              confirm="Hard reboot cuts power to the instance. Continue?"),
    "suspend": ActionSpec("Suspend", RUNNING, frozenset({"SUSPENDED"}), gpu=False),
    "resume": ActionSpec("Resume", frozenset({"SUSPENDED"}), RUNNING),
    "shelve": ActionSpec("Shelve", RUNNING | STOPPED | {"SUSPENDED"}, SHELVED,
                         confirm="Shelving frees the instance's host; unshelving takes a few minutes. Continue?"),
    "unshelve": ActionSpec("Unshelve", SHELVED, RUNNING, style="outline-success"),
    "resize": ActionSpec("Resize", RUNNING | STOPPED, frozenset({"VERIFY_RESIZE"}), whole_gpu=False),
    "resize_confirm": ActionSpec("Confirm resize", frozenset({"VERIFY_RESIZE"}), RUNNING | STOPPED,
                                 style="outline-success"),
    "resize_revert": ActionSpec("Revert resize", frozenset({"VERIFY_RESIZE"}), RUNNING | STOPPED),
    "lock": ActionSpec("Lock", ANY, ANY),
    "unlock": ActionSpec("Unlock", ANY, ANY, when_locked=True),
    "rebuild": ActionSpec("Re-image", RUNNING | STOPPED, RUNNING,
                          confirm="Re-imaging replaces the instance's disk: everything on it is lost. Continue?"),
    "image_create": ActionSpec("Create image", RUNNING | STOPPED, RUNNING | STOPPED),
    "floating_ip_assign": ActionSpec("Assign public IP", RUNNING | STOPPED, RUNNING | STOPPED),
    "floating_ip_release": ActionSpec("Release public IP", ANY, ANY, confirm="Release the public IP address?"),
    "delete": ActionSpec("Delete", ANY | {"BUILD"}, frozenset(), style="outline-danger",
                         confirm="Delete this instance? Its disk is destroyed and cannot be recovered."),
}


def action_refusal(*, instance: Instance, action: str) -> str:
    """Why the action is not offered for this instance now, or "" if it is."""
    spec = ACTIONS.get(action)
    if spec is None:
        return "There is no such action."
    if instance.deleted_at:
        return "The instance has been deleted."
    if instance.is_locked and action != "unlock" and not spec.when_locked:
        return "The instance is locked; unlock it first."
    if action == "lock" and instance.is_locked or action == "unlock" and not instance.is_locked:
        return "The instance is already " + ("locked." if instance.is_locked else "unlocked.")
    if instance.status not in spec.from_statuses:
        return f"{spec.label} is not possible while the instance is {instance.status.lower()}."
    if instance.task_state and action != "delete":
        return f"The instance is busy ({instance.task_state.replace('_', ' ')})."
    if instance.is_gpu and not spec.gpu:
        return f"{spec.label} is not available for GPU flavors."
    if instance.is_whole_gpu and not spec.whole_gpu:
        return f"{spec.label} is not available for whole-GPU flavors."
    if action == "rebuild" and not instance.image_id:
        return "An instance that boots from a volume cannot be re-imaged."
    if action == "floating_ip_release" and not instance.floating_ips:
        return "The instance has no public IP."
    if action == "floating_ip_assign" and instance.floating_ips:
        return "The instance already has a public IP."
    return ""


def actions_available(*, instance: Instance) -> list[tuple[str, ActionSpec]]:
    return [(name, spec) for name, spec in ACTIONS.items() if not action_refusal(instance=instance, action=name)]


@dataclass(frozen=True)
class ResizePreview:
    """What a resize changes, for the confirm step: the flavors and their SU/hour."""
    instance: Instance
    flavor: compute.Flavor
    old_rate: Decimal
    new_rate: Decimal

    @property
    def new_gpu_share(self) -> str:
        return gpu_share_label(self.flavor.gpu_fraction) if self.flavor.is_gpu else ""


def resize_preview(*, user, instance: Instance, flavor_id: str) -> ResizePreview:
    """Check a resize to this flavor could be asked for now; what it would change.

    Raises ActionNotAllowed or InsufficientBalance with words for the page."""
    if reason := action_refusal(instance=instance, action="resize"):
        raise ActionNotAllowed(reason)
    allocation = instance.allocation
    try:
        scope = member_scope(user=user, allocation=allocation, creating=True, region=instance.region)
        flavor = compute.flavor_get(scope=scope, flavor_id=flavor_id)
    except NoCloudAccess as exc:
        raise ActionNotAllowed(str(exc)) from None
    except NotFound:
        raise ActionNotAllowed("That flavor is not available to this project; choose another.") from None
    if flavor.name == instance.flavor_name:
        raise ActionNotAllowed("Pick a flavor different from the current one.")
    if not flavor_allowed(kind=allocation.kind, flavor_name=flavor.name):
        raise ActionNotAllowed(f"{flavor.name} is not available to {allocation.get_kind_display()} allocations.")
    preflight_launch(allocation=allocation, flavor_name=flavor.name, vcpus=flavor.vcpus)
    return ResizePreview(instance=instance, flavor=flavor,
                         old_rate=su_per_hour(flavor_name=instance.flavor_name, vcpus=instance.vcpus),
                         new_rate=su_per_hour(flavor_name=flavor.name, vcpus=flavor.vcpus))


def instance_act(*, user, instance: Instance, action: str, params: dict | None = None,
                 acting_as=None) -> CloudAction:
    """Check the action applies, record it and enqueue it; refuses a second open action.

    `acting_as`: a member of the allocation whose identity the call runs as, when `user` (who asked,
    and is recorded) has none there: a student acting on their class seat, as the class's owner.
    Callers check that `user` may act on this instance."""
    from .. import tasks

    params = dict(params or {})
    if reason := action_refusal(instance=instance, action=action):
        raise ActionNotAllowed(reason)
    allocation = instance.allocation
    try:
        member_scope(user=acting_as or user, allocation=allocation, creating=action in CREATING,
                     region=instance.region)
    except NoCloudAccess as exc:
        raise ActionNotAllowed(str(exc)) from None
    if action == "resize":
        flavor = resize_preview(user=acting_as or user, instance=instance, flavor_id=params.get("flavor_id", "")).flavor
        params = {"flavor_id": flavor.id, "flavor_name": flavor.name, "from_flavor_name": instance.flavor_name}
    elif action == "unshelve":
        preflight_launch(allocation=allocation, flavor_name=instance.flavor_name, vcpus=instance.vcpus)
    elif action == "delete":
        keep = set(params.get("keep_addresses") or ())
        params = {"keep_addresses": sorted(keep & set(instance.floating_ips))}
    elif action == "rebuild":
        params = {"image_id": params.get("image_id") or instance.image_id, "user_data": params.get("user_data", "")}
    try:
        with transaction.atomic():
            row = CloudAction.objects.create(
                allocation=allocation, project_id=instance.project_id, target_type=ActionTarget.SERVER,
                target_id=instance.server_id, target_name=instance.name, action=action, params=params,
                requested_by=user, acting_as=acting_as, region=instance.region)
            status_row_enqueue(row=row, task=tasks.action_run, queue=region_queue(instance.region))
    except IntegrityError:
        raise ActionNotAllowed("Another action on this instance is still running; wait for it to finish.") from None
    return row


def action_label(row: CloudAction) -> str:
    """The action in words ("Assign public IP"), for histories and activity lists."""
    if row.target_type == ActionTarget.VOLUME:
        from .volumes import LABELS

        return f"{LABELS.get(row.action, row.action.replace('_', ' ').capitalize())} volume"
    spec = ACTIONS.get(row.action)
    return spec.label if spec else row.action.replace("_", " ").capitalize()


def action_dismiss(*, user, action: CloudAction) -> CloudAction:
    """Put away a failed server action the person has read: it leaves the instance's row and page
    (the history keeps it)."""
    if action.target_type != ActionTarget.SERVER or action.state != "failed":
        raise ActionNotAllowed("Only a failed action on an instance can be dismissed.")
    if action.dismissed_at is None:
        CloudAction.objects.filter(pk=action.pk, dismissed_at__isnull=True).update(dismissed_at=timezone.now())
        action.refresh_from_db(fields=["dismissed_at"])
    return action


def portal_floating_ip_addresses(*, instance: Instance) -> list[str]:
    """The instance's public IPs the portal made for it (by its launch or an "Assign public IP"),
    as far as the mirror knows: those its deletion releases unless the person keeps them."""
    if not instance.floating_ips:
        return []
    launch = instance.launch_request
    if launch is not None and launch.floating_ip_ids:
        return list(instance.floating_ips)  # the launch's ids are matched exactly when deleting
    assigned = {(a.result or {}).get("address") for a in CloudAction.objects.filter(
        target_type=ActionTarget.SERVER, target_id=instance.server_id, action="floating_ip_assign",
        state="succeeded")}
    return [addr for addr in instance.floating_ips if addr in assigned]


def _floating_ips_made_for(row: CloudAction, scope: Scope) -> list[network.FloatingIP]:
    """The public IPs pointing at the server now that the portal made for it: its launch's, and
    those its "Assign public IP" actions took."""
    instance = Instance.objects.filter(server_id=row.target_id).select_related("launch_request").first()
    made_ids = set(instance.launch_request.floating_ip_ids) if instance and instance.launch_request else set()
    made_addresses = {(a.result or {}).get("address") for a in CloudAction.objects.filter(
        target_type=ActionTarget.SERVER, target_id=row.target_id, action="floating_ip_assign", state="succeeded")}
    try:
        addresses = compute.server_get(scope=scope, server_id=row.target_id).addresses
    except NotFound:
        return []
    fixed = {a.addr for a in addresses if a.kind != "floating"}
    floating = {a.addr for a in addresses if a.kind == "floating"}
    # Neutron's own link (the fixed address it points at) counts, even before Nova's cache shows it.
    return [f for f in network.floating_ip_list(scope=scope)
            if (f.address in floating or f.port_id and f.fixed_address in fixed)
            and (f.id in made_ids or f.address in made_addresses)]


def _call(row: CloudAction, scope: Scope) -> None:
    server = row.target_id
    if row.action in compute._ACTIONS:
        compute.server_action(scope=scope, server_id=server, action=row.action)
    elif row.action == "resize":
        compute.server_resize(scope=scope, server_id=server, flavor_id=row.params["flavor_id"])
    elif row.action == "rebuild":
        compute.server_rebuild(scope=scope, server_id=server, image_id=row.params["image_id"],
                               user_data=row.params.get("user_data", ""))
    elif row.action == "image_create":
        image_id = compute.server_image_create(scope=scope, server_id=server,
                                               name=row.params.get("name") or f"{row.target_name}-image")
        CloudAction.objects.filter(pk=row.pk).update(result={"image_id": image_id})
    elif row.action == "delete":
        keep = set(row.params.get("keep_addresses") or ())
        try:
            made = _floating_ips_made_for(row, scope)
        except CloudUnavailable:
            raise
        except CloudError as exc:  # the delete asked for goes ahead; the addresses stay in the project
            logger.warning("action %s: public IPs made for %s not looked up: %s", row.pk, server, exc.detail or exc)
            made = []
        release = [{"id": f.id, "address": f.address} for f in made if f.address not in keep]
        row.result = {"release_floating_ips": release}
        CloudAction.objects.filter(pk=row.pk).update(result=row.result)  # a retry releases the same ones
        compute.server_delete(scope=scope, server_id=server)
    elif row.action == "floating_ip_assign":
        external = next((n for n in network.network_list(scope=scope) if n.is_external), None)
        if external is None:
            raise CloudError("The cloud has no public network to take a public IP from.")
        tag = f"portal:{row.idempotency_key}"
        fip = floating_ip_for_tag(scope=scope, tag=tag, external_network_id=external.id)
        try:
            network.floating_ip_associate(scope=scope, floating_ip_id=fip.id, server_id=server)
        except CloudError:
            network.floating_ip_delete(scope=scope, floating_ip_id=fip.id)  # not left holding the quota
            raise
        floating_ip_duplicates_release(scope=scope, tag=tag, keep_id=fip.id)
        CloudAction.objects.filter(pk=row.pk).update(result={"address": fip.address})
    elif row.action == "floating_ip_release":
        instance = Instance.objects.get(server_id=server)
        for fip in network.floating_ip_list(scope=scope):
            if fip.address in instance.floating_ips:
                network.floating_ip_delete(scope=scope, floating_ip_id=fip.id)


def _done(row: CloudAction, server: compute.Server | None, scope: Scope) -> bool:
    if row.action == "delete":
        return server is None or server.status == "DELETED"
    if server is None:
        raise NotFound("The instance disappeared during the action.")
    if server.status == "ERROR" and row.action != "delete":
        raise compute.server_fault_error(server)
    if server.task_state:
        return False
    if row.action in ("lock", "unlock"):
        return server.is_locked == (row.action == "lock")
    if row.action == "floating_ip_assign":
        return any(a.kind == "floating" for a in server.addresses) or time.time() - row.started_at.timestamp() > 15
    if row.action == "floating_ip_release":
        return True
    if server.status in ACTIONS[row.action].done_statuses:
        return True
    _raise_if_nova_failed(row, scope)
    return False


# our action -> the name Nova gives it in the server's action log
NOVA_ACTION_NAMES = {"start": "start", "stop": "stop", "reboot_soft": "reboot", "reboot_hard": "reboot",
                     "suspend": "suspend", "resume": "resume", "shelve": "shelve", "unshelve": "unshelve",
                     "resize": "resize", "resize_confirm": "confirmResize", "resize_revert": "revertResize",
                     "rebuild": "rebuild"}


def _raise_if_nova_failed(row: CloudAction, scope: Scope) -> None:
    """A settled server not in the expected state: did Nova log this action as failed?"""
    name = NOVA_ACTION_NAMES.get(row.action)
    if not name:
        return
    events = compute.server_event_list(scope=scope, server_id=row.target_id)
    mine = next((e for e in events if e.action == name and e.start_time and row.started_at
                 and e.start_time.timestamp() >= row.started_at.timestamp() - 5), None)
    if mine and mine.message.lower() == "error":
        if row.action == "resize":
            raise NoValidHost("No host can take the new flavor right now, so the instance was not resized. "
                              "It is still running with its old flavor.")
        raise CloudError(f"The cloud could not {ACTIONS[row.action].label.lower()} the instance.")


def _already_done(row: CloudAction, scope: Scope) -> bool:
    if row.action in ("image_create", "floating_ip_assign", "floating_ip_release", "reboot_soft", "reboot_hard",
                      "rebuild"):
        return False
    try:
        return _done(row, compute.server_get(scope=scope, server_id=row.target_id), scope)
    except NotFound:
        return row.action == "delete"
    except CloudError:
        return False


# Nova's action log names these too (a call that went through shows there, even if its answer was lost).
NOVA_LOGGED = {**NOVA_ACTION_NAMES, "image_create": "createImage", "delete": "delete"}


def _already_called(row: CloudAction, scope: Scope) -> bool:
    """Did an earlier try's call reach Nova (its answer lost: a worker that died, a reset connection)?
    Then the call is not made again: a second reboot, image or start is not what was asked for."""
    if _already_done(row, scope):
        return True
    name = NOVA_LOGGED.get(row.action)
    if not name or row.started_at is None:
        return False
    try:
        events = compute.server_event_list(scope=scope, server_id=row.target_id)
    except NotFound:
        return row.action == "delete"
    since = row.started_at.timestamp() - 5
    return any(e.action == name and e.start_time and e.start_time.timestamp() >= since for e in events)


# Progress once the call is made: later passes only check on it.
PROGRESS_CALLED = 50


def _check(row: CloudAction, scope: Scope) -> bool:
    """Has Nova shown the action's outcome? Raises if it failed or took past the deadline."""
    try:
        server = compute.server_get(scope=scope, server_id=row.target_id)
    except NotFound:
        server = None
    if _done(row, server, scope):
        return True
    if (timezone.now() - (row.started_at or timezone.now())).total_seconds() > settings.PORTAL_ACTION_DEADLINE:
        raise CloudError(f"The instance did not finish “{ACTIONS[row.action].label.lower()}” within "
                         f"{settings.PORTAL_ACTION_DEADLINE // 60} minutes.")
    return False


def action_run(*, action_id: int) -> CloudAction:
    """One pass of a server action (portal.runner checks again while the row is not final): make the
    call, or check whether Nova shows its outcome; refresh the mirror when it is final either way."""
    row = CloudAction.objects.select_related("allocation").get(pk=action_id)
    if row.is_final:
        return row
    label = ACTIONS[row.action].label.lower()
    try:
        scope = action_scope(row)
    except NoCloudAccess as exc:
        row = status_row_start(row=row, step=label)
        return status_row_fail(row=row, error=str(exc))
    error = ""
    try:
        if row.progress < PROGRESS_CALLED:
            row = status_row_start(row=row, step=label)
            if row.attempts == 1 or not _already_called(row, scope):  # a retry must not repeat what went through
                _call(row, scope)
            row = status_row_progress(row=row, step=label, progress=PROGRESS_CALLED)
        if not _check(row, scope):
            return status_row_progress(row=row, step=label)  # still working: checked again soon
        if row.action == "delete":
            _release_floating_ips(row, scope)
    except CloudUnavailable:
        raise  # the task's retry policy
    except CloudError as exc:
        error = cloud_action_error(row=row, exc=exc)
    return cloud_action_finish(row=row, error=error, refresh=lambda r: _refresh_mirror(r, scope))


def cloud_actions_resume(*, stale_seconds: int, limit: int = 50) -> int:
    """Re-enqueue server and volume actions whose chain of passes stopped (a worker died)."""
    from .. import tasks

    return stale_rows_resume(CloudAction, stale_seconds=stale_seconds, limit=limit, task_for=lambda row: (
        tasks.volume_action_run if row.target_type == ActionTarget.VOLUME else tasks.action_run))


def cloud_action_give_up(*, row: CloudAction, exc: BaseException, tries: int) -> CloudAction:
    """The cloud stopped answering for good: fail the action saying whether its call went through."""
    row.refresh_from_db()
    why = give_up_words(row, exc, tries=tries)
    if row.progress >= PROGRESS_CALLED:
        why += (" The cloud had accepted the request, so it may still finish: the list shows the state the "
                "cloud reports.")
    else:
        why += " The request may not have reached the cloud; try again once it answers."
    return status_row_fail(row=row, error=why)


def _release_floating_ips(row: CloudAction, scope: Scope) -> None:
    """Once the server is gone, release the public IPs the portal made for it (unless kept)."""
    row.refresh_from_db(fields=["result"])
    for fip in (row.result or {}).get("release_floating_ips", []):
        try:
            network.floating_ip_delete(scope=scope, floating_ip_id=fip["id"])
        except CloudError as exc:
            raise CloudError(f"The instance was deleted, but releasing its public IP {fip['address']} failed: "
                             f"{exc} Release it on the Public IPs page.", detail=exc.detail,
                             request_id=exc.request_id) from exc


def action_scope(row: CloudAction) -> Scope:
    """The identity an action runs as: the person who asked for it (or the member they act
    through: a class's owner for a student's seat), in the action's project and region."""
    return member_scope(user=row.acting_as or row.requested_by, allocation=row.allocation, region=row.region)


def cloud_action_error(*, row: CloudAction, exc: CloudError) -> str:
    """Keep the cloud's request id for the history; return the words to show the user."""
    CloudAction.objects.filter(pk=row.pk).update(cloud_request_id=exc.request_id[:128])
    return str(exc)


def cloud_action_finish(*, row: CloudAction, error: str, refresh) -> CloudAction:
    """Refresh the mirror before the row is final, so whoever sees it final sees the new state. A
    re-image's user data (a class seat's holds the student's password hash) is dropped: Nova has it,
    and a re-image asked again renders it anew."""
    row.refresh_from_db()
    refresh(row)
    if "user_data" in row.params:
        row.params = {k: v for k, v in row.params.items() if k != "user_data"}
        CloudAction.objects.filter(pk=row.pk).update(params=row.params)
    return status_row_fail(row=row, error=error) if error else status_row_succeed(row=row)


def _refresh_mirror(row: CloudAction, scope: Scope) -> None:
    try:
        instance_refresh(allocation=row.allocation, server_id=row.target_id, scope=scope)
    except CloudError:
        pass  # the next sync will catch up
