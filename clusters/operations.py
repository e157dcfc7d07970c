"""One pass of a cluster's long step (portal.runner checks again while the row is not final).

- create / resume: follow the node's launch (instances' own status row); once ACTIVE, tag the
  server with the cluster in Nova, note its address (the head's is the workers' NFS server), and
  drop the user data from the launch row (it held the munge key and the head's token).
- suspend: once the node's launch is final, delete its server through instance_act, and follow
  that action to its end; the node is powered down again.
- delete: release every worker, then the head; the cluster is deleted once none has a server.
"""
from __future__ import annotations

import logging

from django.db import transaction
from django.utils import timezone

from allocations.scopes import NoCloudAccess, member_scope
from instances.models import CloudAction, Instance, LaunchRequest
from instances.services import ActionNotAllowed, instance_act
from portal.cloud import compute, network
from portal.cloud.errors import CloudError, CloudUnavailable
from portal.services import status_row_fail, status_row_progress, status_row_start, status_row_succeed

from .models import (
    Cluster,
    ClusterEvent,
    ClusterNode,
    ClusterOperation,
    ClusterState,
    EventKind,
    NodeRole,
    NodeState,
    OperationKind,
)
from .services import OPEN, _release, worker_rate

logger = logging.getLogger(__name__)
META_CLUSTER = "portal:cluster"
META_NODE = "portal:cluster_node"


def operation_pass(op_id: int) -> ClusterOperation:
    op = ClusterOperation.objects.select_related("cluster__allocation", "cluster__created_by", "node",
                                                 "launch", "action").get(pk=op_id)
    if op.is_final:
        return op
    if op.state == "queued":
        op = status_row_start(row=op, step=op.kind)
    passes = {OperationKind.CREATE: _launched, OperationKind.RESUME: _launched,
              OperationKind.SUSPEND: _suspended, OperationKind.DELETE: _deleted}
    return passes[OperationKind(op.kind)](op)


def _node_update(node: ClusterNode, **fields) -> None:
    ClusterNode.objects.filter(pk=node.pk).update(updated_at=timezone.now(), **fields)


def _launched(op: ClusterOperation) -> ClusterOperation:
    launch: LaunchRequest = LaunchRequest.objects.get(pk=op.launch_id)
    cluster, node = op.cluster, op.node
    if not launch.is_final:
        return status_row_progress(row=op, step=launch.step or "building", progress=launch.progress)
    LaunchRequest.objects.filter(pk=launch.pk).update(user_data="")  # held the munge key (and the head's token)
    instance = Instance.objects.filter(launch_request=launch).first() or Instance.objects.filter(
        server_id__in=launch.server_ids).first()
    if launch.state != "succeeded" and not (instance and instance.status == "ACTIVE"):
        return _launch_failed(op, launch)
    server_id = instance.server_id if instance else launch.server_ids[0]
    _tag(cluster, node, server_id)
    public = _public_address(cluster, launch) if node.role == NodeRole.HEAD else ""
    # One transaction: nobody sees the head active while the cluster still says "creating".
    with transaction.atomic():
        # Only a node still building becomes active: one Slurm gave back meanwhile is being deleted.
        ClusterNode.objects.filter(pk=node.pk, state=NodeState.BUILDING).update(
            state=NodeState.ACTIVE, server_id=server_id, reason="", updated_at=timezone.now())
        ClusterNode.objects.filter(pk=node.pk).exclude(state=NodeState.ACTIVE).update(server_id=server_id)
        if node.role == NodeRole.HEAD:
            fixed = next((a["addr"] for a in (instance.addresses if instance else []) if a.get("kind") == "fixed"),
                         "")
            Cluster.objects.filter(pk=cluster.pk, state=ClusterState.CREATING).update(
                state=ClusterState.READY, head_address=fixed, head_public_address=public)
    return status_row_succeed(row=op, step="active")


def _public_address(cluster: Cluster, launch: LaunchRequest) -> str:
    """The head's public IP as Neutron has it (the mirror learns it from Nova a sync later)."""
    if not launch.floating_ip_ids:
        return ""
    try:
        scope = member_scope(user=cluster.created_by, allocation=cluster.allocation)
        ips = network.floating_ip_list(scope=scope)
    except CloudUnavailable:
        raise
    except (CloudError, NoCloudAccess):
        return ""
    return next((ip.address for ip in ips if ip.id in launch.floating_ip_ids), "")


def _tag(cluster: Cluster, node: ClusterNode, server_id: str) -> None:
    """The cluster and node name in the server's metadata, so the CLI and Horizon show what it is."""
    try:
        scope = member_scope(user=cluster.created_by, allocation=cluster.allocation)
        compute.server_metadata_set(scope=scope, server_id=server_id,
                                    metadata={META_CLUSTER: str(cluster.pk), META_NODE: node.name})
    except CloudUnavailable:
        raise
    except (CloudError, NoCloudAccess) as exc:
        logger.warning("cluster %s: tagging %s failed: %s", cluster.pk, server_id, exc)


def _launch_failed(op: ClusterOperation, launch: LaunchRequest) -> ClusterOperation:
    cluster, node = op.cluster, op.node
    reason = launch.error or "The server did not start."
    ClusterNode.objects.filter(pk=node.pk, state=NodeState.BUILDING).update(
        state=NodeState.FAILED, reason=reason, updated_at=timezone.now())
    ClusterEvent.objects.create(cluster=cluster, node_name=node.name, kind=EventKind.FAILED, reason=reason)
    if op.kind == OperationKind.CREATE:
        Cluster.objects.filter(pk=cluster.pk).update(state=ClusterState.FAILED, error=f"The head node failed: {reason}")
    return status_row_fail(row=op, error=reason)


def _suspended(op: ClusterOperation) -> ClusterOperation:
    node = ClusterNode.objects.get(pk=op.node_id)
    if node.launch_id and LaunchRequest.objects.filter(pk=node.launch_id, state__in=OPEN).exists():
        return status_row_progress(row=op, step="waiting for the launch")
    if op.action_id is None:
        return _delete_server(op, node)
    action = CloudAction.objects.get(pk=op.action_id)
    if not action.is_final:
        return status_row_progress(row=op, step="deleting", progress=50)
    if action.state != "succeeded":
        _node_update(node, state=NodeState.FAILED, reason=f"Deleting its server failed: {action.error}")
        return status_row_fail(row=op, error=action.error or "Deleting the server failed.")
    return _powered_down(op, node)


def _delete_server(op: ClusterOperation, node: ClusterNode) -> ClusterOperation:
    server_ids = [node.server_id] if node.server_id else list(
        LaunchRequest.objects.filter(pk=node.launch_id).values_list("server_ids", flat=True).first() or [])
    instance = Instance.objects.filter(server_id__in=server_ids, deleted_at__isnull=True).first()
    if instance is None:  # never made, or already gone
        return _powered_down(op, node)
    try:
        action = instance_act(user=op.requested_by or op.cluster.created_by, instance=instance, action="delete")
    except ActionNotAllowed as exc:
        if "still running" in str(exc):
            return status_row_progress(row=op, step="waiting for another action")
        if instance.deleted_at or "deleted" in str(exc):
            return _powered_down(op, node)
        _node_update(node, state=NodeState.FAILED, reason=str(exc))
        return status_row_fail(row=op, error=str(exc))
    ClusterOperation.objects.filter(pk=op.pk).update(action=action)
    op.refresh_from_db()
    return status_row_progress(row=op, step="deleting", progress=20)


def _powered_down(op: ClusterOperation, node: ClusterNode) -> ClusterOperation:
    _node_update(node, state=NodeState.POWERED_DOWN, server_id="")
    if node.role == NodeRole.WORKER:
        ClusterEvent.objects.create(cluster=op.cluster, node_name=node.name, kind=EventKind.SCALE_IN,
                                    su_per_hour=worker_rate(op.cluster),
                                    reason=f"{node.name}'s server was deleted.")
    return status_row_succeed(row=op, step="deleted")


def _deleted(op: ClusterOperation) -> ClusterOperation:
    cluster = op.cluster
    live = list(cluster.nodes.exclude(state__in=[NodeState.POWERED_DOWN, NodeState.REFUSED])
                .exclude(state=NodeState.FAILED, server_id="", launch__state__in=["succeeded", "failed"]))
    workers = [n for n in live if n.role == NodeRole.WORKER]
    with transaction.atomic():
        for node in workers or live:  # the head last
            if not node.operations.filter(kind=OperationKind.SUSPEND, state__in=OPEN).exists():
                _release(cluster=cluster, node=node, user=op.requested_by)
    if live:
        failed = cluster.operations.filter(kind=OperationKind.SUSPEND, state="failed",
                                           updated_at__gte=op.created_at).first()
        if failed is not None:
            Cluster.objects.filter(pk=cluster.pk).update(error=f"Deleting {failed.node.name} failed: {failed.error}")
            return status_row_fail(row=op, error=f"Deleting {failed.node.name} failed: {failed.error}")
        return status_row_progress(row=op, step=f"deleting {'workers' if workers else 'the head node'}")
    Cluster.objects.filter(pk=cluster.pk).update(state=ClusterState.DELETED, deleted_at=timezone.now())
    ClusterEvent.objects.create(cluster=cluster, kind=EventKind.DELETED, reason="Every node and the head were deleted.")
    return status_row_succeed(row=op, step="deleted")


def operations_resume(*, stale_seconds: int, limit: int = 50) -> int:
    from portal.runner import stale_rows_resume

    from . import tasks

    return stale_rows_resume(ClusterOperation, stale_seconds=stale_seconds, limit=limit,
                             task_for=lambda row: tasks.operation_run)
