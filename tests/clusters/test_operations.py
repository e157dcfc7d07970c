"""A cluster's long steps on the unit fake cloud, their passes run in-process as the runner would:
create → the head ACTIVE, tagged, its address noted, the launch's user data dropped; resume and
suspend of a worker; delete → every worker, then the head, then the cluster."""
from __future__ import annotations

import pytest

from clusters import operations, services
from clusters.models import ClusterOperation, ClusterState, NodeState
from instances.models import CloudAction, LaunchRequest
from instances.services import action_run, launch_provision
from portal.cloud import compute
from tests.instances.integration_support import run_passes
from tests.instances.test_launch import neutron  # noqa: F401 - Neutron faked (the head gets a public IP)

pytestmark = pytest.mark.django_db


@pytest.fixture
def tags(monkeypatch):
    seen = []
    monkeypatch.setattr(compute, "server_metadata_set", lambda **kw: seen.append((kw["server_id"], kw["metadata"])))
    return seen


def run_op(op: ClusterOperation) -> ClusterOperation:
    """The operation's passes, with the launches and actions it waits for run too."""
    def one_pass(pk):
        row = ClusterOperation.objects.get(pk=pk)
        for launch in LaunchRequest.objects.filter(state__in=["queued", "running"]):
            run_passes(lambda p: launch_provision(request_id=p), launch.pk, timeout=10)
        for action in CloudAction.objects.filter(state__in=["queued", "running"]):
            run_passes(lambda p: action_run(action_id=p), action.pk, timeout=10)
        for other in ClusterOperation.objects.filter(state__in=["queued", "running"]).exclude(pk=pk):
            operations.operation_pass(other.pk)  # what the worker runs beside it (a delete's suspends)
        return operations.operation_pass(row.pk)
    return run_passes(one_pass, op.pk, timeout=30)


def test_the_cluster_lives_and_dies_through_its_operations(cloud, neutron, cluster, tags):  # noqa: F811
    create = ClusterOperation.objects.get(cluster=cluster, kind="create")
    assert run_op(create).state == "succeeded"
    cluster.refresh_from_db()
    head = cluster.nodes.get(name="head")
    assert cluster.state == ClusterState.READY and head.state == NodeState.ACTIVE and head.server_id
    assert cluster.head_public_address  # from Neutron: the mirror learns it a sync later
    assert (head.server_id, {"portal:cluster": str(cluster.pk), "portal:cluster_node": "head"}) in tags
    assert LaunchRequest.objects.get(pk=head.launch_id).user_data == ""

    services.node_resume(cluster=cluster, name="w1")
    assert run_op(ClusterOperation.objects.get(cluster=cluster, kind="resume")).state == "succeeded"
    w1 = cluster.nodes.get(name="w1")
    assert w1.state == NodeState.ACTIVE and cloud.servers[w1.server_id].name == "demo-w1"

    services.node_suspend(cluster=cluster, name="w1")
    assert run_op(ClusterOperation.objects.get(cluster=cluster, kind="suspend")).state == "succeeded"
    assert cluster.nodes.get(name="w1").state == NodeState.POWERED_DOWN
    assert w1.server_id not in cloud.servers or cloud.servers[w1.server_id].status == "DELETED"

    services.node_resume(cluster=cluster, name="w2")
    run_op(ClusterOperation.objects.get(cluster=cluster, kind="resume", node__name="w2"))
    delete = services.cluster_delete(user=cluster.created_by, cluster=cluster)
    assert run_op(delete).state == "succeeded"
    cluster.refresh_from_db()
    assert cluster.state == ClusterState.DELETED and cluster.deleted_at
    assert all(n.state == NodeState.POWERED_DOWN for n in cluster.nodes.all())
    assert not [s for s in cloud.servers.values() if s.status != "DELETED"]
