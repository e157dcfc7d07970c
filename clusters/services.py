"""Writes: making a cluster, a worker's resume and suspend (called by the head's programs through
the API), the head's reports, deleting a cluster.

Every server is made through `instances.services.instance_launch` and deleted through
`instance_act`, as the cluster's creator (resumes, suspends) or the member who deletes it: the
same idempotent launch, the same balance preflight, flavor access and allocation-state refusals,
the same charging. What follows a launch or delete to its end is a ClusterOperation moved by
clusters.tasks.operation_run (portal.runner): no request waits on the cloud.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from allocations.charging import InsufficientBalance, preflight_launch, su_per_hour
from allocations.flavor_access import flavor_allowed
from allocations.scopes import NoCloudAccess, member_scope
from instances.models import Instance
from instances.services import ActionNotAllowed, instance_launch
from portal.cloud import compute
from portal.services import status_row_enqueue

from . import rendering
from .models import (
    HEAD_NODE,
    MAX_WORKERS_LIMIT,
    Cluster,
    ClusterEvent,
    ClusterNode,
    ClusterOperation,
    ClusterState,
    EventKind,
    ImageFamily,
    NodeRole,
    NodeState,
    OperationKind,
)

logger = logging.getLogger(__name__)
TOKEN_PREFIX = "rcc"
OPEN = ("queued", "running")


class ClusterRefused(Exception):
    """A resume (or another request) the portal will not carry out; `str()` says why, in words
    the head's program puts on the Slurm node. `status` is the API's answer."""

    def __init__(self, message: str, *, status: int = 409, slug: str = "refused"):
        super().__init__(message)
        self.status, self.slug = status, slug


def token_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def cluster_for_token(raw: str) -> Cluster | None:
    """The live cluster whose head holds this token, or None."""
    if not raw.startswith(f"{TOKEN_PREFIX}_"):
        return None
    return (Cluster.objects.select_related("allocation", "created_by").filter(token_hash=token_hash(raw))
            .exclude(state=ClusterState.DELETED).first())


def image_family(*, image_name: str, os_distro: str = "") -> str:
    """Ubuntu or Rocky from Glance's os_distro, else from the image's name; "" if neither."""
    text = f"{os_distro} {image_name}".lower()
    return next((f.value for f in ImageFamily if f.value in text), "")


def _flavor(cluster: Cluster) -> compute.Flavor:
    return compute.Flavor(id=cluster.worker_flavor_id, name=cluster.worker_flavor_name, vcpus=cluster.worker_vcpus,
                          ram_mb=cluster.worker_ram_mb, disk_gb=0)


def worker_rate(cluster: Cluster) -> Decimal:
    return su_per_hour(flavor_name=cluster.worker_flavor_name, vcpus=cluster.worker_vcpus)


def cluster_create(*, user, allocation, name: str, image_id: str, image_name: str, family: str,
                   head_flavor: compute.Flavor, worker_flavor: compute.Flavor, max_workers: int = 4,
                   idle_minutes: int = 10, ssh_key=None) -> Cluster:
    """Record the cluster and launch its head (with a public IP) through the instances' launch path.

    Raises what instance_launch raises (InsufficientBalance for the head's runway, ValidationError,
    NoCloudAccess), and ValidationError for a worker flavor the allocation may not use."""
    member_scope(user=user, allocation=allocation, creating=True)
    if not flavor_allowed(kind=allocation.kind, flavor_name=worker_flavor.name):
        raise ValidationError(f"{worker_flavor.name} is not available to {allocation.get_kind_display()} allocations.")
    preflight_launch(allocation=allocation, flavor_name=head_flavor.name, vcpus=head_flavor.vcpus)
    if Cluster.objects.filter(allocation=allocation, name=name, deleted_at=None).exists():
        raise ValidationError({"name": f"The project already has a cluster named “{name}”."})
    raw = f"{TOKEN_PREFIX}_{secrets.token_urlsafe(32)}"
    with transaction.atomic():
        cluster = Cluster.objects.create(
            allocation=allocation, created_by=user, name=name, image_id=image_id, image_name=image_name,
            image_family=family, head_flavor_id=head_flavor.id, head_flavor_name=head_flavor.name,
            head_vcpus=head_flavor.vcpus, worker_flavor_id=worker_flavor.id, worker_flavor_name=worker_flavor.name,
            worker_vcpus=worker_flavor.vcpus, worker_ram_mb=worker_flavor.ram_mb,
            worker_gpus=worker_flavor.vgpus or int(worker_flavor.is_gpu),
            max_workers=max_workers, node_ceiling=MAX_WORKERS_LIMIT, idle_minutes=idle_minutes, ssh_key=ssh_key,
            encrypted_munge_key=rendering.munge_key_new(), token_hash=token_hash(raw))
        head = ClusterNode.objects.create(cluster=cluster, name=HEAD_NODE, role=NodeRole.HEAD,
                                          state=NodeState.BUILDING)
        ClusterNode.objects.bulk_create([ClusterNode(cluster=cluster, name=n, role=NodeRole.WORKER)
                                         for n in cluster.worker_names()])
        launch = instance_launch(
            user=user, allocation=allocation, flavor=head_flavor, image_id=image_id, image_name=image_name,
            name=cluster.server_name(HEAD_NODE), ssh_key=ssh_key, assign_floating_ip=True,
            user_data=rendering.head_user_data(cluster, token=raw))
        ClusterNode.objects.filter(pk=head.pk).update(launch=launch)
        ClusterEvent.objects.create(cluster=cluster, node_name=HEAD_NODE, kind=EventKind.CREATED,
                                    su_per_hour=su_per_hour(flavor_name=head_flavor.name, vcpus=head_flavor.vcpus),
                                    reason=f"Head node {head_flavor.name}, up to {max_workers} × {worker_flavor.name}.")
        _operation_start(cluster=cluster, node=head, kind=OperationKind.CREATE, launch=launch, user=user)
    cluster.head_token = raw  # not stored: the head holds it (its hash is kept), and tests call as the head
    return cluster


def _operation_start(*, cluster: Cluster, kind: str, node: ClusterNode | None = None, launch=None, user=None,
                     ) -> ClusterOperation:
    from . import tasks

    op = ClusterOperation.objects.create(cluster=cluster, node=node, kind=kind, launch=launch, requested_by=user)
    status_row_enqueue(row=op, task=tasks.operation_run, queue=settings.PORTAL_CLOUD_QUEUE)
    return op


def _refuse(cluster: Cluster, node: ClusterNode, reason: str, status: int = 409) -> None:
    """Record a refused resume (the node, the event log) and raise it for the API to answer. The
    head's program marks the node DOWN with the reason; it stays held until the allocation can
    carry a worker again (cluster_report then answers "return it to service")."""
    ClusterNode.objects.filter(pk=node.pk).update(state=NodeState.REFUSED, reason=reason, held=True,
                                                  updated_at=timezone.now())
    ClusterEvent.objects.create(cluster=cluster, node_name=node.name, kind=EventKind.REFUSED, reason=reason,
                                su_per_hour=worker_rate(cluster))
    raise ClusterRefused(reason, status=status)


def worker_refusal(*, cluster: Cluster) -> tuple[str, int]:
    """Why the allocation cannot carry one more worker now ("" if it can), and the API status."""
    from instances.quota import launch_refusals
    from instances.selectors import project_quota_for

    user, allocation = cluster.created_by, cluster.allocation
    try:
        member_scope(user=user, allocation=allocation, creating=True)
        preflight_launch(allocation=allocation, flavor_name=cluster.worker_flavor_name, vcpus=cluster.worker_vcpus)
    except NoCloudAccess as exc:
        return str(exc), 409
    except InsufficientBalance as exc:
        return str(exc), 402 if exc.shortfall is not None else 409
    if not flavor_allowed(kind=allocation.kind, flavor_name=cluster.worker_flavor_name):
        return f"{cluster.worker_flavor_name} is not available to {allocation.get_kind_display()} allocations.", 409
    quota = project_quota_for(user=user, allocation=allocation)
    refusals = launch_refusals(quota=quota, flavor=_flavor(cluster), count=1)
    if refusals:
        return " ".join(refusals.values()), 409
    return "", 200


def node_resume(*, cluster: Cluster, name: str) -> ClusterNode:
    """Make the worker's server (slurmctld's ResumeProgram asks). Idempotent per node name: a node
    already building or active gets no second server. Refused, with no server made, when the
    allocation cannot carry it (state, balance and runway, flavor access, quota): ClusterRefused."""
    refused: tuple[str, int] | None = None
    with transaction.atomic():
        node = _worker_locked(cluster, name)
        cluster.refresh_from_db()
        if node.state in (NodeState.BUILDING, NodeState.ACTIVE):
            return node
        if cluster.state != ClusterState.READY:
            raise ClusterRefused(f"The cluster is {cluster.get_state_display().lower()}: no worker can start now.")
        if node.state == NodeState.DELETING:
            raise ClusterRefused(f"{name}'s previous server is still being deleted; Slurm may try again.")
        refused = _worker_refusal_or_launch(cluster, node)
    if refused:  # recorded outside the transaction above, which made nothing
        _refuse(cluster, node, *refused)
    node.refresh_from_db()
    return node


def _worker_refusal_or_launch(cluster: Cluster, node: ClusterNode) -> tuple[str, int] | None:
    if node.name not in cluster.worker_names():
        return f"The cluster may have up to {cluster.max_workers} workers; {node.name} is beyond that.", 409
    reason, status = worker_refusal(cluster=cluster)
    if reason:
        return reason, status
    try:
        launch = instance_launch(
            user=cluster.created_by, allocation=cluster.allocation, flavor=_flavor(cluster),
            image_id=cluster.image_id, image_name=cluster.image_name, name=cluster.server_name(node.name),
            ssh_key=cluster.ssh_key, user_data=rendering.worker_user_data(cluster, node=node.name))
    except InsufficientBalance as exc:
        return str(exc), 402 if exc.shortfall is not None else 409
    except (NoCloudAccess, ValidationError) as exc:
        return " ".join(getattr(exc, "messages", None) or [str(exc)]), 409
    ClusterNode.objects.filter(pk=node.pk).update(state=NodeState.BUILDING, launch=launch, reason="", held=False,
                                                  server_id="", slurm_state="", updated_at=timezone.now())
    ClusterEvent.objects.create(cluster=cluster, node_name=node.name, kind=EventKind.SCALE_OUT,
                                su_per_hour=worker_rate(cluster),
                                reason=f"Slurm asked for {node.name}: a {cluster.worker_flavor_name} server.")
    _operation_start(cluster=cluster, node=node, kind=OperationKind.RESUME, launch=launch)
    return None


def _worker_locked(cluster: Cluster, name: str) -> ClusterNode:
    node = ClusterNode.objects.select_for_update().filter(cluster=cluster, name=name, role=NodeRole.WORKER).first()
    if node is None:
        raise ClusterRefused(f"The cluster has no worker named “{name}”.", status=404, slug="not-found")
    return node


def node_suspend(*, cluster: Cluster, name: str) -> ClusterNode:
    """Delete the worker's server (slurmctld's SuspendProgram, or ResumeFailProgram, asks).
    Idempotent: a node with no server, or one already being deleted, is left as it is."""
    with transaction.atomic():
        node = _worker_locked(cluster, name)
        has_server = node.server_id or node.launch_id
        if node.state in (NodeState.BUILDING, NodeState.ACTIVE, NodeState.FAILED) and has_server:
            _release(cluster=cluster, node=node, user=cluster.created_by)
        elif node.state == NodeState.REFUSED:
            ClusterNode.objects.filter(pk=node.pk).update(state=NodeState.POWERED_DOWN)
    node.refresh_from_db()
    return node


def _release(*, cluster: Cluster, node: ClusterNode, user) -> ClusterOperation:
    """Start deleting the node's server (once its launch is final, the operation deletes it)."""
    open_op = node.operations.filter(kind=OperationKind.SUSPEND, state__in=OPEN).first()
    if open_op is not None:
        return open_op
    ClusterNode.objects.filter(pk=node.pk).update(state=NodeState.DELETING, updated_at=timezone.now())
    return _operation_start(cluster=cluster, node=node, kind=OperationKind.SUSPEND, user=user)


def cluster_delete(*, user, cluster: Cluster) -> ClusterOperation:
    """Delete every worker, then the head; the cluster is deleted once nothing is left."""
    member_scope(user=user, allocation=cluster.allocation)
    with transaction.atomic():
        cluster = Cluster.objects.select_for_update().get(pk=cluster.pk)
        open_op = cluster.operations.filter(kind=OperationKind.DELETE, state__in=OPEN).first()
        if open_op is not None:
            return open_op
        if cluster.state == ClusterState.DELETED:
            raise ActionNotAllowed("The cluster is already deleted.")
        Cluster.objects.filter(pk=cluster.pk).update(state=ClusterState.DELETING)
        return _operation_start(cluster=cluster, kind=OperationKind.DELETE, user=user)


def max_workers_limit(cluster: Cluster) -> int:
    """How many workers the head's slurm.conf can have (clusters made before the ceiling: as many as
    they were made with)."""
    return cluster.node_ceiling or cluster.nodes.filter(role=NodeRole.WORKER).count()


def cluster_set_max_workers(*, user, cluster: Cluster, max_workers: int) -> Cluster:
    """Change how many workers Slurm may have, up or down, while the cluster runs. The head's
    next report (every 30 s) gets the batch partition's new nodes as its answer and applies them
    with scontrol; workers busy beyond a lowered max finish their jobs and are removed when idle."""
    member_scope(user=user, allocation=cluster.allocation)
    limit = max_workers_limit(cluster)
    if not 1 <= max_workers <= limit:
        raise ValidationError({"max_workers": f"Choose 1 to {limit}: the head node knows {limit} workers."})
    if not cluster.is_live:
        raise ValidationError({"max_workers": "The cluster is being deleted."})
    with transaction.atomic():
        before = Cluster.objects.select_for_update().get(pk=cluster.pk).max_workers
        Cluster.objects.filter(pk=cluster.pk).update(max_workers=max_workers)
        cluster.refresh_from_db()
        have = set(cluster.nodes.values_list("name", flat=True))
        ClusterNode.objects.bulk_create([ClusterNode(cluster=cluster, name=n, role=NodeRole.WORKER)
                                         for n in cluster.worker_names() if n not in have])
        if before != max_workers:
            ClusterEvent.objects.create(
                cluster=cluster, kind=EventKind.RESIZED, su_per_hour=worker_rate(cluster) * max_workers,
                reason=f"Up to {max_workers} workers (was {before}), by {user.email or user.get_username()}; "
                       "the head applies it within a minute.")
    return cluster


def cluster_report(*, cluster: Cluster, nodes: list[dict], jobs: list[dict]) -> dict:
    """Take the head's sinfo/squeue summary (each node's Slurm state and reason, the jobs) and
    answer with what Slurm should change: the batch partition's nodes (the cluster's max workers)
    and the held nodes to return to service, now that the allocation can carry a worker again."""
    by_name = {n["name"]: n for n in nodes}
    returned = []
    for node in cluster.nodes.filter(name__in=list(by_name)):
        seen = by_name[node.name]
        slurm_state = seen.get("state", "")[:64]
        ClusterNode.objects.filter(pk=node.pk).update(slurm_state=slurm_state,
                                                      reason=seen.get("reason", "") or node.reason)
        if node.held and "down" not in slurm_state.lower():
            ClusterNode.objects.filter(pk=node.pk).update(held=False)  # someone returned it already
        elif node.held:
            returned.append(node)
    lost = _servers_lost(cluster)
    counts: dict[str, int] = {}
    for job in jobs:
        counts[job.get("state", "").lower()] = counts.get(job.get("state", "").lower(), 0) + 1
    Cluster.objects.filter(pk=cluster.pk).update(
        report={"jobs": jobs[:200], "pending": counts.get("pending", 0), "running": counts.get("running", 0),
                "nodes": nodes[:200]}, reported_at=timezone.now())
    cluster.refresh_from_db()
    return {"partition": "batch", "partition_nodes": rendering.partition_nodes(cluster),
            "resume": _return_to_service(cluster, returned), "power_down": lost}


def _servers_lost(cluster: Cluster) -> list[str]:
    """Workers whose server is gone though no suspend asked for it (deleted with the CLI, or by the
    allocation's enforcement): the node is powered down in the portal, and the answer asks Slurm
    to power it down too (its jobs are requeued), so it can be resumed on a new server."""
    active = list(cluster.nodes.filter(role=NodeRole.WORKER, state=NodeState.ACTIVE).exclude(server_id=""))
    gone = set(Instance.objects.filter(server_id__in=[n.server_id for n in active], deleted_at__isnull=False)
               .values_list("server_id", flat=True))
    lost = sorted((n for n in active if n.server_id in gone), key=lambda n: n.name)
    for node in lost:
        ClusterNode.objects.filter(pk=node.pk, state=NodeState.ACTIVE).update(
            state=NodeState.POWERED_DOWN, server_id="", updated_at=timezone.now())
        ClusterEvent.objects.create(cluster=cluster, node_name=node.name, kind=EventKind.SCALE_IN,
                                    su_per_hour=worker_rate(cluster),
                                    reason=f"{node.name}'s server was deleted outside the cluster; Slurm powers "
                                           "the node down and may resume it on a new server.")
    return [n.name for n in lost]


def _return_to_service(cluster: Cluster, held: list[ClusterNode]) -> list[str]:
    """The held nodes Slurm may try again: those within max workers, once nothing refuses a worker."""
    held = [n for n in held if n.name in cluster.worker_names()]
    if not held or cluster.state != ClusterState.READY:
        return []
    reason, _ = worker_refusal(cluster=cluster)
    if reason:
        return []
    names = sorted(n.name for n in held)
    ClusterNode.objects.filter(pk__in=[n.pk for n in held]).update(
        held=False, state=NodeState.POWERED_DOWN, reason="", updated_at=timezone.now())
    ClusterEvent.objects.create(cluster=cluster, node_name=names[0] if len(names) == 1 else "",
                                kind=EventKind.RETURNED,
                                su_per_hour=worker_rate(cluster),
                                reason=f"The allocation can carry a worker again: Slurm may use {', '.join(names)}.")
    return names


def node_instance(node: ClusterNode) -> Instance | None:
    if not node.server_id:
        return None
    return Instance.objects.filter(server_id=node.server_id, deleted_at__isnull=True).first()
