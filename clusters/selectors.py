"""Reads for the cluster pages: a person's clusters, one cluster's live state, the cost preview."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Sum
from django.http import Http404

from allocations.charging import su_per_hour
from allocations.models import LedgerEntry
from allocations.selectors import allocation_list_for_user
from instances.models import Instance, LaunchRequest

from .models import Cluster, ClusterEvent, ClusterState, NodeRole, NodeState

IN_FLUX = (NodeState.BUILDING, NodeState.DELETING)
LOGIN_USERS = {"ubuntu": "ubuntu", "rocky": "rocky"}


def cluster_list_for_user(*, user, allocation=None):
    """The live clusters of the person's allocations (deleted ones are history, not listed)."""
    qs = Cluster.objects.filter(allocation__in=allocation_list_for_user(user=user)).exclude(
        state=ClusterState.DELETED).select_related("allocation", "created_by")
    if allocation is not None:
        qs = qs.filter(allocation=allocation)
    return qs.order_by("-created_at")


def cluster_get_for_user(*, user, pk: int) -> Cluster:
    cluster = (Cluster.objects.filter(pk=pk, allocation__in=allocation_list_for_user(user=user))
               .select_related("allocation", "created_by").first())
    if cluster is None:
        raise Http404("No such cluster.")
    return cluster


@dataclass(frozen=True)
class CostPreview:
    head: Decimal  # SU/hour
    worker: Decimal  # SU/hour each
    max_workers: int

    @property
    def most_per_hour(self) -> Decimal:
        return self.head + self.worker * self.max_workers

    @property
    def most_per_day(self) -> Decimal:
        return self.most_per_hour * 24

    @property
    def idle_per_day(self) -> Decimal:
        return self.head * 24


def cost_preview(*, head_flavor, worker_flavor, max_workers: int) -> CostPreview:
    return CostPreview(head=su_per_hour(flavor_name=head_flavor.name, vcpus=head_flavor.vcpus),
                       worker=su_per_hour(flavor_name=worker_flavor.name, vcpus=worker_flavor.vcpus),
                       max_workers=max_workers)


def cluster_cost(cluster: Cluster) -> CostPreview:
    return CostPreview(head=su_per_hour(flavor_name=cluster.head_flavor_name, vcpus=cluster.head_vcpus),
                       worker=su_per_hour(flavor_name=cluster.worker_flavor_name, vcpus=cluster.worker_vcpus),
                       max_workers=cluster.max_workers)


def cluster_server_ids(cluster: Cluster) -> list[str]:
    """Every server the cluster ever had (each launch of its head and workers)."""
    launches = LaunchRequest.objects.filter(pk__in=cluster.operations.exclude(launch=None).values("launch"))
    return sorted({sid for ids in launches.values_list("server_ids", flat=True) for sid in ids})


def cluster_page(*, cluster: Cluster) -> dict:
    """What the cluster page shows and polls: nodes with their cloud and Slurm state, the jobs, the
    SUs its servers were charged, the events, and how to connect to the head."""
    allowed = set(cluster.worker_names())
    # Workers beyond a lowered max show only while they still have a server.
    nodes = [n for n in cluster.nodes.all()
             if n.role == NodeRole.HEAD or n.name in allowed or n.state != NodeState.POWERED_DOWN]
    instances = {i.server_id: i for i in Instance.objects.filter(
        server_id__in=[n.server_id for n in nodes if n.server_id])}
    for node in nodes:
        node.instance = instances.get(node.server_id)
        node.cloud_state = node.instance.status if node.instance and not node.instance.deleted_at else ""
    head = next((n for n in nodes if n.role == NodeRole.HEAD), None)
    head_ip = cluster.head_public_address or (
        next(iter(head.instance.floating_ips), "") if head and head.instance else "")
    burned = LedgerEntry.objects.filter(allocation=cluster.allocation, resource_id__in=cluster_server_ids(cluster),
                                        sus__lt=0).aggregate(total=Sum("sus"))["total"] or Decimal(0)
    report = cluster.report or {}
    return {
        "cluster": cluster, "nodes": nodes, "head": head, "head_ip": head_ip,
        "login_user": LOGIN_USERS.get(cluster.image_family, "ubuntu"),
        "events": list(ClusterEvent.objects.filter(cluster=cluster)[:30]), "burned": -burned,
        "cost": cluster_cost(cluster), "jobs": report.get("jobs", [])[:20],
        "pending": report.get("pending", 0), "running": report.get("running", 0),
        "worker_slots": cluster.node_ceiling or sum(1 for n in nodes if n.role == NodeRole.WORKER),
        "active_workers": sum(1 for n in nodes if n.role == NodeRole.WORKER and n.state == NodeState.ACTIVE),
        "in_flux": cluster.state in (ClusterState.CREATING, ClusterState.DELETING)
        or any(n.state in IN_FLUX for n in nodes),
        "final": cluster.state in (ClusterState.DELETED, ClusterState.FAILED),
    }
