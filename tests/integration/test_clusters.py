"""Clusters against the real local cloud with a real Celery worker (issue 10, part 3).

The head's programs are played by the test client calling the same API routes with the cluster's
own token: create → head ACTIVE; resume w1 → worker ACTIVE, tagged with the cluster in Nova; resume
w1 again → no second server; suspend w1 → the server is gone from Nova; a resume the balance cannot
carry is refused in words and makes nothing; delete → nothing of the cluster is left in the project.
"""
from __future__ import annotations

from decimal import Decimal

import pytest

from allocations.models import LedgerEntry
from allocations.scopes import member_scope
from clusters import services
from clusters.models import Cluster, ClusterEvent, ClusterNode, ClusterState, EventKind, NodeState
from instances.models import LaunchRequest
from portal.cloud import compute, image
from tests.cloud_sdk import connection_get
from tests.fixtures.celery_worker import wait_for
from tests.instances.integration_support import instances_allocation, nova_servers

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
__all__ = ["instances_allocation"]


def flavor(scope, name: str) -> compute.Flavor:
    return next(f for f in compute.flavor_list(scope=scope) if f.name == name)


def create_cluster(allocation, *, name: str = "hpc", max_workers: int = 2) -> Cluster:
    scope = member_scope(user=allocation.pi, allocation=allocation)
    ubuntu = next(i for i in image.image_list(scope=scope) if i.name == "Featured-Ubuntu24")
    return services.cluster_create(
        user=allocation.pi, allocation=allocation, name=name, image_id=ubuntu.id, image_name=ubuntu.name,
        family=services.image_family(image_name=ubuntu.name, os_distro=ubuntu.os_distro),
        head_flavor=flavor(scope, "m3.small"), worker_flavor=flavor(scope, "m3.quad"), max_workers=max_workers,
        idle_minutes=10)


def node(cluster: Cluster, name: str) -> ClusterNode:
    return ClusterNode.objects.get(cluster=cluster, name=name)


def call(client, cluster: Cluster, token: str, path: str):
    return client.post(f"/api/v1/clusters/{cluster.pk}/{path}", {}, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token}")


def servers_named(project_id: str, name: str) -> list:
    return [s for s in nova_servers(project_id) if s.name == name]


def test_a_cluster_scales_through_the_portal_and_leaves_nothing(client, instances_allocation, celery_worker_process):
    allocation, pid = instances_allocation, instances_allocation.openstack_project_id
    # given a cluster made with the defaults' flavors
    cluster = create_cluster(allocation)
    token = cluster.head_token
    # then the head becomes ACTIVE, with a public IP, tagged with the cluster
    wait_for(lambda: node(cluster, "head").state == NodeState.ACTIVE, timeout=240, message="the head ACTIVE")
    cluster.refresh_from_db()
    assert cluster.state == ClusterState.READY and cluster.head_address and cluster.head_public_address
    head = connection_get(project_id=pid).compute.get_server(node(cluster, "head").server_id)
    assert head.status == "ACTIVE" and head.metadata.get("portal:cluster") == str(cluster.pk)
    assert LaunchRequest.objects.get(pk=node(cluster, "head").launch_id).user_data == ""  # key and token dropped

    # when slurmctld resumes w1 (twice, the second while it builds)
    first = call(client, cluster, token, "nodes/w1/resume/")
    again = call(client, cluster, token, "nodes/w1/resume/")
    assert (first.status_code, again.status_code) == (202, 202), first.content
    assert first.json()["state"] == "building"
    wait_for(lambda: node(cluster, "w1").state == NodeState.ACTIVE, timeout=240, message="w1 ACTIVE")
    # then one server, ACTIVE, tagged with the cluster and the node
    [w1] = servers_named(pid, "hpc-w1")
    assert w1.status == "ACTIVE" and w1.metadata.get("portal:cluster") == str(cluster.pk)
    assert w1.metadata.get("portal:cluster_node") == "w1"
    # and a resume of an active node makes nothing more
    assert call(client, cluster, token, "nodes/w1/resume/").status_code == 202
    assert len(servers_named(pid, "hpc-w1")) == 1
    assert LaunchRequest.objects.filter(name="hpc-w1").count() == 1

    # when slurmctld suspends w1, the server is deleted in Nova
    assert call(client, cluster, token, "nodes/w1/suspend/").status_code == 202
    wait_for(lambda: node(cluster, "w1").state == NodeState.POWERED_DOWN, timeout=180, message="w1 powered down")
    wait_for(lambda: not servers_named(pid, "hpc-w1"), timeout=120, message="hpc-w1 gone from Nova")
    kinds = list(ClusterEvent.objects.filter(cluster=cluster, node_name="w1").values_list("kind", flat=True))
    assert EventKind.SCALE_OUT in kinds and EventKind.SCALE_IN in kinds

    # when the allocation cannot carry a worker for the runway, the resume is refused with words
    left = allocation.balance()
    drain = LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=-(left - Decimal(5)),
                                       note="test: drained")
    refused = call(client, cluster, token, "nodes/w2/resume/")
    assert refused.status_code == 402 and refused["Content-Type"] == "application/problem+json"
    assert "Not enough SUs" in refused.json()["detail"]
    assert node(cluster, "w2").state == NodeState.REFUSED and "Not enough SUs" in node(cluster, "w2").reason
    assert ClusterEvent.objects.filter(cluster=cluster, node_name="w2", kind=EventKind.REFUSED).exists()
    assert not LaunchRequest.objects.filter(name="hpc-w2").exists() and not servers_named(pid, "hpc-w2")
    LedgerEntry.objects.create(allocation=allocation, kind="adjustment", sus=-drain.sus, note="test: restored")

    # a personal token or a wrong cluster reaches nothing
    assert call(client, cluster, "rcc_not-a-token", "nodes/w1/resume/").status_code == 401

    # when the cluster is deleted, nothing of it is left in the project
    services.cluster_delete(user=allocation.pi, cluster=cluster)
    wait_for(lambda: Cluster.objects.get(pk=cluster.pk).state == ClusterState.DELETED, timeout=240,
             message="the cluster deleted")
    wait_for(lambda: not [s for s in nova_servers(pid) if s.name.startswith("hpc-")], timeout=120,
             message="no server of the cluster in Nova")
    assert not list(connection_get(project_id=pid).network.ips(project_id=pid)), "the head's public IP was left"
    # and its token no longer opens anything
    assert call(client, cluster, token, "report/").status_code == 401
