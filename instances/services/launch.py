"""Launching servers: the request row, and the provisioning that cannot duplicate or leak."""
from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from allocations.charging import preflight_launch
from allocations.flavor_access import flavor_allowed
from allocations.scopes import NoCloudAccess, member_scope
from portal.cloud import compute, network
from portal.cloud.connection import Scope
from portal.cloud.errors import CloudError, CloudUnavailable
from portal.runner import give_up_words, region_queue, stale_rows_resume
from portal.services import (
    status_row_enqueue,
    status_row_fail,
    status_row_progress,
    status_row_start,
    status_row_succeed,
    status_rows_enqueue_made,
)

from ..models import Instance, LaunchRequest
from .public_ips import floating_ip_duplicates_release, floating_ip_for_tag
from .sync import instances_upsert

DEFAULT_GROUP = "ssh-icmp"
PORTAL_NETWORK = "portal-net"
DEFAULT_GROUP_DESCRIPTION = "SSH and ping from anywhere (made by the portal)"
logger = logging.getLogger(__name__)

# The steps a launch goes through, as the progress page names them.
STEP_FLOATING_IP = "assigning public IP"
# Progress once every server is ACTIVE (the steps after start here).
PROGRESS_ACTIVE = 92
# Steps after every server is ACTIVE: their failure keeps the servers, and the page offers to try the
# step again with the server action named here.
STEP_WORDS = {STEP_FLOATING_IP: "assigning a public IP"}
STEP_RETRY_ACTIONS = {STEP_FLOATING_IP: "floating_ip_assign"}


class LaunchTimedOut(CloudError):
    default_message = "The instance did not become active in time."


class PartlyBuilt(CloudError):
    """Some servers became ACTIVE and the others never did: the active ones are kept."""

    def __init__(self, cause: CloudError, active: list[compute.Server]):
        super().__init__(str(cause), detail=cause.detail, request_id=cause.request_id)
        self.active = active


def instance_launch(*, user, allocation, flavor: compute.Flavor, image_id: str, image_name: str, name: str,
                    count: int = 1, boot_volume_gb: int | None = None, boot_volume_id: str = "", ssh_key=None,
                    security_groups: list[str] | None = None, network_id: str = "", user_data: str = "",
                    assign_floating_ip: bool = False, region: str = "") -> LaunchRequest:
    """Check the balance, record the request and enqueue its provisioning on commit, on the queue of
    its region ("" the primary; one the allocation is enabled in). The balance is the allocation's
    one balance, whatever the region.

    Raises allocations.charging.InsufficientBalance with a message for the form, or NoCloudAccess
    if the person may not make servers in the allocation's project (or that region) now."""
    from .. import tasks

    member_scope(user=user, allocation=allocation, creating=True, region=region)
    if not flavor_allowed(kind=allocation.kind, flavor_name=flavor.name):
        raise ValidationError(f"{flavor.name} is not available to {allocation.get_kind_display()} allocations.")
    preflight_launch(allocation=allocation, flavor_name=flavor.name, vcpus=flavor.vcpus, count=count)
    with transaction.atomic():
        row = LaunchRequest.objects.create(
            allocation=allocation, project_id=allocation.openstack_project_id, requested_by=user, name=name,
            count=count, flavor_id=flavor.id, flavor_name=flavor.name, image_id=image_id, image_name=image_name,
            boot_volume_gb=boot_volume_gb, boot_volume_id=boot_volume_id, ssh_key=ssh_key,
            security_groups=security_groups or [],
            network_id=network_id, user_data=user_data, assign_floating_ip=assign_floating_ip, step="queued",
            region=region)
        status_row_enqueue(row=row, task=tasks.launch_provision, queue=region_queue(region))
    return row


def instance_launch_many(*, user, allocation, flavor: compute.Flavor, image_id: str, image_name: str,
                         servers: list[tuple[str, str]], boot_volume_gb: int | None = None,
                         security_groups: list[str] | None = None,
                         assign_floating_ip: bool = False) -> list[LaunchRequest]:
    """Launches of one server each, one per (name, user data), checked and recorded together (a
    class's seats): the person's access and the balance for all of them are checked once, the rows
    are made in one INSERT, and each is its own task on the cloud queue once they commit. Raises
    what instance_launch raises."""
    import uuid

    from .. import tasks

    member_scope(user=user, allocation=allocation, creating=True)
    if not flavor_allowed(kind=allocation.kind, flavor_name=flavor.name):
        raise ValidationError(f"{flavor.name} is not available to {allocation.get_kind_display()} allocations.")
    preflight_launch(allocation=allocation, flavor_name=flavor.name, vcpus=flavor.vcpus, count=len(servers))
    with transaction.atomic():
        rows = LaunchRequest.objects.bulk_create([LaunchRequest(
            allocation=allocation, project_id=allocation.openstack_project_id, requested_by=user, name=name, count=1,
            flavor_id=flavor.id, flavor_name=flavor.name, image_id=image_id, image_name=image_name,
            boot_volume_gb=boot_volume_gb, security_groups=security_groups or [], user_data=user_data,
            assign_floating_ip=assign_floating_ip, step="queued", celery_task_id=str(uuid.uuid4()))
            for name, user_data in servers])
        status_rows_enqueue_made(rows=rows, task=tasks.launch_provision, queue=settings.PORTAL_CLOUD_QUEUE)
    return rows


def _tagged_all(row: LaunchRequest, scope: Scope) -> dict[int, list[compute.Server]]:
    """Every server made for this request (found by its idempotency key), by index, oldest first.
    An index can hold two: a create that timed out may still have been running in Nova when the
    retry looked, found nothing and made the server again."""
    servers = compute.server_list(scope=scope, name=f"^{row.name}")
    found: dict[int, list[compute.Server]] = {}
    for server in servers:
        if server.metadata.get(compute.META_REQUEST) == str(row.idempotency_key) and server.status != "DELETED":
            found.setdefault(int(server.metadata.get(compute.META_INDEX, 1)), []).append(server)
    for same in found.values():
        same.sort(key=lambda s: (s.id not in row.server_ids, s.created_at or timezone.now(), s.id))
    return found


def _tagged(row: LaunchRequest, scope: Scope) -> dict[int, compute.Server]:
    """Servers already made for this request, one per index: the one whose create was answered (its
    id is on the row), else the oldest."""
    return {index: same[0] for index, same in _tagged_all(row, scope).items()}


def _delete_duplicates(row: LaunchRequest, scope: Scope, tagged: dict[int, list[compute.Server]]) -> bool:
    """Delete the second server of an index (see `_tagged_all`); True if there was one. The launch
    checks again until Nova lists none, so a launch never succeeds with a duplicate left behind."""
    extra = [s for same in tagged.values() for s in same[1:]]
    for server in extra:
        logger.warning("launch %s: deleting %s (%s), a second server for one index", row.pk, server.name, server.id)
        compute.server_delete(scope=scope, server_id=server.id)
    if extra:
        Instance.objects.filter(server_id__in=[s.id for s in extra]).update(deleted_at=timezone.now(),
                                                                              status="DELETED")
    return bool(extra)


def _network_id(row: LaunchRequest, scope: Scope) -> str:
    """The network chosen, or for "Automatic" one that a router connects to the public network
    (the project's own before a shared one), made with its router if there is none; never an
    isolated network, from which no public IP could reach the instance."""
    if row.network_id:
        return row.network_id
    networks = network.network_list(scope=scope)
    external = [n for n in networks if n.is_external]
    if not external:  # a cloud without public networks: its networks are reachable as they are
        candidates = [n for n in networks if n.project_id == row.project_id] + [n for n in networks if n.is_shared]
        if not candidates:
            raise CloudError("The project has no network to attach the instance to.")
        return candidates[0].id
    routed = networks_routed_to_external(networks=networks, routers=network.router_list(scope=scope))
    own = [n for n in routed if n.project_id == row.project_id]
    shared = [n for n in routed if n.is_shared and n.project_id != row.project_id]
    if own or shared:
        return (own or shared)[0].id
    # Found and completed if an earlier try made only part of it (a worker that died after the subnet).
    return network.network_ensure_routed(scope=scope, name=PORTAL_NETWORK, cidr="10.0.0.0/24",
                                         external_network_id=external[0].id).id


def networks_routed_to_external(*, networks: list[network.Network],
                                routers: list[network.Router]) -> list[network.Network]:
    """Of these networks, those with a subnet on a router whose gateway is an external network."""
    external = {n.id for n in networks if n.is_external}
    subnets = {subnet for r in routers if r.external_network_id in external for subnet in r.subnet_ids}
    return [n for n in networks if not n.is_external and subnets.intersection(n.subnet_ids)]


def security_group_ensure_default(*, scope: Scope) -> str:
    """The project's "ssh + icmp" group, made on first launch if the project has none; an earlier try
    that made the group but not both rules is completed. A group the project already had with that
    name is left as its owners keep it."""
    group = next((g for g in network.security_group_list(scope=scope) if g.name == DEFAULT_GROUP), None)
    if group is not None and group.description != DEFAULT_GROUP_DESCRIPTION:
        return DEFAULT_GROUP
    if group is None:
        group = network.security_group_create(scope=scope, name=DEFAULT_GROUP, description=DEFAULT_GROUP_DESCRIPTION)
    have = {(r.direction, r.protocol, r.port_min, r.remote_ip_prefix) for r in group.rules}
    for protocol, port in (("tcp", 22), ("icmp", None)):
        if ("ingress", protocol, port, "0.0.0.0/0") not in have:
            network.security_group_rule_create(scope=scope, group_id=group.id, protocol=protocol, port=port)
    return DEFAULT_GROUP


def _create_servers(row: LaunchRequest, scope: Scope) -> LaunchRequest:
    """Make the servers not made yet. The row stays locked meanwhile, so a second delivery of the
    same message waits, then finds them by the request's key instead of making them again."""
    network_id, groups = _project_setup(row, scope)
    LaunchRequest.objects.filter(pk=row.pk).update(create_attempts=F("create_attempts") + 1)
    with transaction.atomic():
        locked = LaunchRequest.objects.select_for_update().get(pk=row.pk)
        # Only the first attempt ever may skip the look: nothing was sent for this request before it.
        # (`attempts` too: a row a pass began before create_attempts was counted looks, whatever it says.)
        first = locked.create_attempts == 1 and locked.attempts <= 1 and not locked.server_ids
        existing = {} if first else _tagged(row, scope)
        if len(existing) < row.count:
            _create_missing(row, scope, existing, network_id, groups)
        else:
            LaunchRequest.objects.filter(pk=row.pk).update(server_ids=[s.id for s in existing.values()])
    row.refresh_from_db()
    return row


def _project_setup(row: LaunchRequest, scope: Scope) -> tuple[str, list[str]]:
    """The network and security groups the servers get. One launch at a time sets a project up (a
    lock held only for this, committed before any server is made), so concurrent first launches
    make one network and one group; later launches find them and pass at once."""
    if row.network_id and row.security_groups:
        return row.network_id, list(row.security_groups)
    automatic = (f"instances:project-setup:{row.project_id}:{row.region}"
                 if not (row.network_id or row.security_groups) else "")
    found = cache.get(automatic) if automatic else None
    if found is None:
        with transaction.atomic():
            _project_setup_lock(f"{row.project_id}:{row.region}" if row.region else row.project_id)
            found = cache.get(automatic) if automatic else None  # made by the launch that held the lock
            if found is None:
                found = (_network_id(row, scope),
                         row.security_groups or ["default", security_group_ensure_default(scope=scope)])
                if automatic:  # the launches of a class's start share one look at the project
                    cache.set(automatic, found, settings.PORTAL_PROJECT_SETUP_CACHE_SECONDS)
    network_id, groups = found
    # What was chosen stays on the row: a later pass (a retry, a resumed launch) asks the cloud no more.
    LaunchRequest.objects.filter(pk=row.pk).update(network_id=network_id, security_groups=list(groups))
    row.network_id, row.security_groups = network_id, list(groups)
    return network_id, list(groups)


def _project_setup_lock(project_id: str) -> None:
    """A PostgreSQL advisory lock for setting up one project, held until the transaction ends. Not
    a row lock on the project's sync row: the mirror sync, which updates that row, never waits on it."""
    key = int.from_bytes(hashlib.blake2b(f"launch-setup:{project_id}".encode(), digest_size=8).digest(), "big",
                         signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [key])


def _create_missing(row: LaunchRequest, scope: Scope, existing: dict, network_id: str, groups: list[str]) -> None:
    missing = [i for i in range(1, row.count + 1) if i not in existing]
    key_name = keypair_for(scope=scope, key=row.ssh_key) if row.ssh_key else ""
    for index in missing:
        server = compute.server_create(
            scope=scope, name=row.server_name(index), flavor_id=row.flavor_id, image_id=row.image_id,
            network_ids=[network_id], key_name=key_name, security_groups=groups, user_data=row.user_data,
            boot_volume_gb=row.boot_volume_gb, boot_volume_id=row.boot_volume_id or None,
            metadata={compute.META_REQUEST: str(row.idempotency_key), compute.META_INDEX: str(index)})
        existing[index] = server
        LaunchRequest.objects.filter(pk=row.pk).update(server_ids=[s.id for s in existing.values()])


def keypair_for(*, scope: Scope, key) -> str:
    """The person's own Nova keypair holding this key, imported on first use; its name.

    Keypairs belong to the person's Keystone user, so the CLI sees the same keys. A keypair of
    theirs with the same name but another key is left alone: this one gets a suffixed name."""
    for name in (key.name, f"{key.name}-{key.fingerprint.removeprefix('SHA256:')[:8]}"):
        found = compute.keypair_get(scope=scope, name=name)
        if found is None:
            return compute.keypair_create(scope=scope, name=name, public_key=key.public_key).name
        if found.public_key.split()[:2] == key.public_key.split()[:2]:
            return found.name
    raise CloudError(f"You already have two different keys named like “{key.name}” in the cloud; rename this one.")


def _check_active(row: LaunchRequest, scope: Scope) -> list[compute.Server] | None:
    """The servers once every one is ACTIVE; None while some still build (the runner checks again).
    Raise when they have all settled with some in ERROR, or past the deadline: PartlyBuilt if some
    did become ACTIVE."""
    tagged = _tagged_all(row, scope)
    if _delete_duplicates(row, scope, tagged):
        status_row_progress(row=row, step="building", progress=40)
        return None
    servers = [same[0] for same in tagged.values()]
    LaunchRequest.objects.filter(pk=row.pk).exclude(server_ids=[s.id for s in servers]).update(
        server_ids=[s.id for s in servers])
    instances_upsert(allocation=row.allocation, servers=servers, scope=scope)
    active = [s for s in servers if s.status == "ACTIVE"]
    failed = [s for s in servers if s.status == "ERROR"]
    if len(active) == row.count:
        return servers
    if failed and len(active) + len(failed) >= len(servers):
        _raise_keeping(compute.server_fault_error(failed[0]), active)
    if len(servers) < row.count:  # one vanished (deleted by someone) before it became ACTIVE
        _raise_keeping(CloudError("An instance of this launch was deleted before it became active."), active)
    started = row.started_at or timezone.now()
    if (timezone.now() - started).total_seconds() > settings.PORTAL_LAUNCH_DEADLINE:
        stuck = [s for s in servers if s.status != "ACTIVE"]
        fault = next((s.fault for s in stuck if s.fault), "")
        _raise_keeping(LaunchTimedOut(
            f"The instance did not become active within {settings.PORTAL_LAUNCH_DEADLINE // 60} "
            f"minutes{': ' + fault if fault else ''}."), active)
    status_row_progress(row=row, step="building", progress=40 + 50 * len(active) // row.count)
    return None


def _raise_keeping(error: CloudError, active: list[compute.Server]):
    raise PartlyBuilt(error, active) if active else error


def _assign_floating_ips(row: LaunchRequest, servers: list[compute.Server], scope: Scope) -> None:
    external = next((n for n in network.network_list(scope=scope) if n.is_external), None)
    if external is None:
        raise CloudError("The cloud has no public network to take a public IP from.")
    ids = list(row.floating_ip_ids)
    for server in servers:
        index = server.metadata.get(compute.META_INDEX, "1")
        tag = f"portal:{row.idempotency_key}:{index}"
        fip = floating_ip_for_tag(scope=scope, tag=tag, external_network_id=external.id)
        if fip.id not in ids:
            ids.append(fip.id)
            LaunchRequest.objects.filter(pk=row.pk).update(floating_ip_ids=ids)
        if not fip.port_id:
            network.floating_ip_associate(scope=scope, floating_ip_id=fip.id, server_id=server.id)
        floating_ip_duplicates_release(scope=scope, tag=tag, keep_id=fip.id)


def launch_cleanup(*, row: LaunchRequest, scope: Scope, keep: frozenset[str] = frozenset()) -> None:
    """Delete what a failed launch made that never became usable (boot volumes go with their
    servers); the servers in `keep` (ACTIVE ones) stay. Nova has accepted each delete when this
    returns; the mirror shows them gone at once and the sync confirms it."""
    for fip_id in row.floating_ip_ids:
        network.floating_ip_delete(scope=scope, floating_ip_id=fip_id)
    servers = [s for same in _tagged_all(row, scope).values() for s in same if s.id not in keep]
    for server in servers:
        compute.server_delete(scope=scope, server_id=server.id)
    gone = Instance.objects.filter(Q(launch_request=row) | Q(server_id__in=row.server_ids)).exclude(server_id__in=keep)
    gone.update(deleted_at=timezone.now(), status="DELETED")


def launch_provision(*, request_id: int) -> LaunchRequest:
    """One pass of a launch (portal.runner checks again while the row is not final): create (or
    find) the request's servers, or check on them; once all are ACTIVE, the steps after (public IPs).

    Servers that never became usable are deleted on failure; once ACTIVE, a server is kept whatever
    fails later (the row names the failed step, and the page offers to try it again). When the cloud
    does not answer, CloudUnavailable goes up to the task's retry policy (then `launch_give_up`)."""
    row = LaunchRequest.objects.select_related("allocation", "requested_by", "ssh_key").get(pk=request_id)
    if row.is_final:
        return row
    try:
        scope = member_scope(user=row.requested_by, allocation=row.allocation, region=row.region)
    except NoCloudAccess as exc:
        row = status_row_start(row=row, step="creating")
        return status_row_fail(row=row, error=f"Nothing was launched: {exc}")
    try:
        if row.state == "queued" or len(row.server_ids) < row.count:
            row = status_row_start(row=row, step="creating")
            row = _create_servers(row, scope)
            row = status_row_progress(row=row, step="building", progress=40)
        servers = _check_active(row, scope)
    except CloudUnavailable:
        raise
    except PartlyBuilt as exc:
        return _fail_partly(row, scope, exc)
    except CloudError as exc:
        LaunchRequest.objects.filter(pk=row.pk).update(cloud_request_id=exc.request_id[:128])
        return _fail(row, scope, str(exc), exc.detail)
    if servers is None:
        row.refresh_from_db()
        return row
    Instance.objects.filter(server_id__in=[s.id for s in servers]).update(launch_request=row)
    return _after_active(row, servers, scope)


def launch_give_up(*, row: LaunchRequest, exc: BaseException, tries: int) -> LaunchRequest:
    """The cloud stopped answering for good: say so, and what the launch leaves behind."""
    row.refresh_from_db()
    why = give_up_words(row, exc, tries=tries)
    if row.progress >= PROGRESS_ACTIVE:  # every server was ACTIVE: keep them, as for any later step
        LaunchRequest.objects.filter(pk=row.pk).update(failed_step=STEP_FLOATING_IP)
        subject = "The instance is" if row.count == 1 else f"The {row.count} instances are"
        return status_row_fail(row=row, error=f"{subject} running, but {STEP_WORDS[STEP_FLOATING_IP]} failed: "
                                              f"{_sentence(why)}")
    try:
        scope = member_scope(user=row.requested_by, allocation=row.allocation, region=row.region)
    except NoCloudAccess:
        return status_row_fail(row=row, error=f"{why} {_left_behind(row)}")
    return _fail(row, scope, why)


def _left_behind(row: LaunchRequest) -> str:
    servers, fips = len(row.server_ids), len(row.floating_ip_ids)
    if not servers and not fips:
        return "No instance had been made yet."
    names = ", ".join(Instance.objects.filter(server_id__in=row.server_ids).values_list("name", flat=True)) \
        or ", ".join(row.server_ids)
    parts = [f"{servers} instance{'s' if servers != 1 else ''} ({names})" if servers else "",
             f"{fips} public IP{'s' if fips != 1 else ''}" if fips else ""]
    return (f"Left in the cloud: {' and '.join(p for p in parts if p)}; they show in your lists, where you can "
            "delete them.")


def _after_active(row: LaunchRequest, servers: list[compute.Server], scope: Scope) -> LaunchRequest:
    """The steps once every server is ACTIVE. A failure here keeps the servers and names the step."""
    if row.assign_floating_ip:
        row = status_row_progress(row=row, step=STEP_FLOATING_IP, progress=PROGRESS_ACTIVE)
        try:
            _assign_floating_ips(row, servers, scope)
        except CloudUnavailable:
            raise  # retried by the task; at the last try launch_give_up keeps the servers
        except CloudError as exc:
            return _fail_step(row, scope, STEP_FLOATING_IP, exc)
        _mirror_refresh(row, scope)
    return status_row_succeed(row=row, step="active")


def _mirror_refresh(row: LaunchRequest, scope: Scope) -> None:
    try:
        instances_upsert(allocation=row.allocation, servers=list(_tagged(row, scope).values()), scope=scope)
    except CloudError:
        pass  # the next sync catches up


def _sentence(text: str) -> str:
    """A message to follow "…failed: ", its first word lowercased unless it is a name like "IP"."""
    text = text.strip()
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        text = text[0].lower() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def _fail_step(row: LaunchRequest, scope: Scope, step: str, exc: CloudError) -> LaunchRequest:
    """A step after the servers became ACTIVE failed: keep the servers, say which step and why."""
    logger.warning("launch %s: %s failed: %s %s", row.pk, step, exc, exc.detail)
    row.refresh_from_db()
    _release_unattached_floating_ips(row, scope)
    LaunchRequest.objects.filter(pk=row.pk).update(failed_step=step, cloud_request_id=exc.request_id[:128])
    _mirror_refresh(row, scope)
    subject = "The instance is" if row.count == 1 else f"The {row.count} instances are"
    return status_row_fail(row=row, error=f"{subject} running, but {STEP_WORDS[step]} failed: {_sentence(str(exc))}")


def _release_unattached_floating_ips(row: LaunchRequest, scope: Scope) -> None:
    """Addresses this launch took but could not point at a server hold the project's quota for
    nothing: release them (a retry takes a fresh one)."""
    if not row.floating_ip_ids:
        return
    try:
        kept = []
        for fip in network.floating_ip_list(scope=scope):
            if fip.id in row.floating_ip_ids:
                if fip.port_id:
                    kept.append(fip.id)
                else:
                    network.floating_ip_delete(scope=scope, floating_ip_id=fip.id)
    except CloudError as exc:
        logger.error("launch %s: releasing unattached public IPs failed: %s", row.pk, exc.detail or exc)
        return
    LaunchRequest.objects.filter(pk=row.pk).update(floating_ip_ids=kept)


def _fail(row: LaunchRequest, scope: Scope, message: str, detail: str = "") -> LaunchRequest:
    """No server became usable: delete what the launch made, and say so."""
    logger.warning("launch %s failed: %s %s", row.pk, message, detail)
    row.refresh_from_db()
    try:
        launch_cleanup(row=row, scope=scope)
    except CloudError as exc:
        logger.error("launch %s: cleanup failed: %s", row.pk, exc.detail or exc)
        message += f" Cleaning up also failed ({_sentence(str(exc)).rstrip('.')}). {_left_behind(row)}"
    else:
        message += " Nothing was left behind."
    return status_row_fail(row=row, error=message)


def _fail_partly(row: LaunchRequest, scope: Scope, exc: PartlyBuilt) -> LaunchRequest:
    """Some servers became ACTIVE: keep them, delete only those that never did."""
    logger.warning("launch %s partly built: %s %s", row.pk, exc, exc.detail)
    row.refresh_from_db()
    keep = frozenset(s.id for s in exc.active)
    Instance.objects.filter(server_id__in=keep).update(launch_request=row)
    lost = row.count - len(keep)
    message = (f"{len(keep)} of {row.count} instances are running and were kept; the other {lost} never became "
               f"usable: {_sentence(str(exc))}")
    try:
        launch_cleanup(row=row, scope=scope, keep=keep)
    except CloudError as cleanup:
        message += f" Removing {'it' if lost == 1 else 'them'} failed ({cleanup}); the sync will show what is left."
    else:
        message += f" {'It was' if lost == 1 else 'They were'} removed."
    if row.assign_floating_ip:
        message += " The running ones have no public IP yet: assign one on their pages."
    return status_row_fail(row=row, error=message)


def launch_step_retry(*, user, launch: LaunchRequest) -> list:
    """Try the launch's failed step again, as the server action that does it, on each of the
    launch's instances still without it. Raises ActionNotAllowed with words when nothing applies."""
    from .actions import ActionNotAllowed, instance_act

    action = STEP_RETRY_ACTIONS.get(launch.failed_step)
    if action is None or launch.state != "failed":
        raise ActionNotAllowed("This launch has no step to try again.")
    instances = list(launch.instances.filter(deleted_at__isnull=True).select_related("allocation"))
    todo = [i for i in instances if not i.floating_ips]
    if not todo:
        raise ActionNotAllowed("Every instance of this launch already has a public IP." if instances
                               else "The instances of this launch no longer exist.")
    return [instance_act(user=user, instance=i, action=action) for i in todo]


def launch_requests_resume(*, stale_seconds: int, limit: int = 50) -> int:
    """Re-enqueue launches whose chain of passes stopped (a worker died)."""
    from .. import tasks

    return stale_rows_resume(LaunchRequest, stale_seconds=stale_seconds, limit=limit,
                             task_for=lambda row: tasks.launch_provision)


def instance_launch_from_form(*, user, allocation, form) -> LaunchRequest:
    """Launch what a valid LaunchForm describes (the page and the API both come through here).

    Raises what instance_launch raises: InsufficientBalance, ValidationError, NoCloudAccess."""
    from .keys import ssh_key_create

    data = form.cleaned_data
    key = next((k for k in form.keys if str(k.pk) == data["ssh_key"]), None)
    if data.get("new_public_key"):
        key = ssh_key_create(user=user, name=data["new_key_name"], public_key=data["new_public_key"])
    return instance_launch(
        user=user, allocation=allocation, flavor=form.chosen_flavor, image_id=data["image"],
        image_name=form.chosen_image.name if form.chosen_image else "", name=data["name"], count=data["count"],
        boot_volume_gb=data["root_disk_gb"], boot_volume_id=data["boot_volume"], ssh_key=key,
        security_groups=data["security_groups"], network_id=data["network"], user_data=data["user_data"],
        assign_floating_ip=data["assign_floating_ip"], region=data.get("region") or "")
