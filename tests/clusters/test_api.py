"""The head's API (clusters/api.py) on the unit fake cloud: its token reaches its own cluster only;
a resume launches through instance_launch once per node name, or is refused in words with nothing
made; a suspend starts the delete; a report updates the nodes' Slurm state."""
from __future__ import annotations

import pytest
from django.utils import timezone

from api.tokens import token_create
from clusters.models import ClusterEvent, ClusterOperation, EventKind, NodeState
from instances.models import LaunchRequest

pytestmark = pytest.mark.django_db


def post(client, cluster, path: str, token: str, data=None):
    return client.post(f"/api/v1/clusters/{cluster.pk}/{path}", data or {}, content_type="application/json",
                       HTTP_AUTHORIZATION=f"Bearer {token}")


def test_creating_records_the_nodes_and_launches_the_head_with_its_user_data(cluster):
    assert [n.name for n in cluster.nodes.order_by("name")] == ["head", "w1", "w2"]
    launch = cluster.nodes.get(name="head").launch
    assert launch.name == "demo-head" and launch.flavor_name == "m3.small" and launch.assign_floating_ip
    assert launch.user_data.startswith("#cloud-config") and cluster.head_token in launch.user_data
    assert ClusterOperation.objects.filter(cluster=cluster, kind="create", launch=launch).exists()
    assert cluster.head_token not in str(cluster.token_hash)


def test_a_resume_launches_one_worker_per_node_name(client, ready):
    first = post(client, ready, "nodes/w1/resume/", ready.head_token)
    again = post(client, ready, "nodes/w1/resume/", ready.head_token)
    assert (first.status_code, again.status_code) == (202, 202)
    assert first.json()["state"] == NodeState.BUILDING
    [launch] = LaunchRequest.objects.filter(name="demo-w1")
    assert launch.flavor_name == "m3.quad" and launch.requested_by == ready.created_by
    assert "--conf-server 10.0.0.5" in launch.user_data
    assert ClusterEvent.objects.filter(cluster=ready, node_name="w1", kind=EventKind.SCALE_OUT).count() == 1


def test_a_resume_the_allocation_cannot_carry_is_refused_with_words_and_makes_nothing(client, ready):
    ready.allocation.disabled_at = timezone.now()
    ready.allocation.save(update_fields=["disabled_at"])
    response = post(client, ready, "nodes/w2/resume/", ready.head_token)
    assert response.status_code == 409 and response["Content-Type"] == "application/problem+json"
    assert "disabled" in response.json()["detail"]
    node = ready.nodes.get(name="w2")
    assert node.state == NodeState.REFUSED and "disabled" in node.reason
    assert ClusterEvent.objects.get(cluster=ready, kind=EventKind.REFUSED).reason == node.reason
    assert not LaunchRequest.objects.filter(name="demo-w2").exists()


def test_a_quota_too_small_refuses_the_resume(client, ready, cloud):
    from tests.instances.conftest import roomy_quota

    cloud.quota = roomy_quota(cores=(2, 4))
    response = post(client, ready, "nodes/w1/resume/", ready.head_token)
    assert response.status_code == 409 and "vCPU" in response.json()["detail"]
    assert not LaunchRequest.objects.filter(name="demo-w1").exists()


def test_an_unknown_node_is_not_found(client, ready):
    assert post(client, ready, "nodes/w9/resume/", ready.head_token).status_code == 404


def test_a_suspend_starts_deleting_the_workers_server(client, ready):
    ready.nodes.filter(name="w1").update(state="active", server_id="srv-w1")
    response = post(client, ready, "nodes/w1/suspend/", ready.head_token)
    assert response.status_code == 202 and response.json()["state"] == NodeState.DELETING
    assert ClusterOperation.objects.filter(node__name="w1", kind="suspend", state="queued").count() == 1
    post(client, ready, "nodes/w1/suspend/", ready.head_token)
    assert ClusterOperation.objects.filter(node__name="w1", kind="suspend").count() == 1
    # a node without a server is left powered down
    assert post(client, ready, "nodes/w2/suspend/", ready.head_token).json()["state"] == NodeState.POWERED_DOWN


def test_a_report_updates_the_nodes_and_the_jobs(client, ready):
    response = post(client, ready, "report/", ready.head_token, {
        "nodes": [{"name": "w1", "state": "down~", "reason": "Not enough SUs"}, {"name": "w2", "state": "idle~"}],
        "jobs": [{"id": "4", "state": "PENDING", "user": "ubuntu", "name": "hello", "nodes": "1"},
                 {"id": "3", "state": "RUNNING", "user": "ubuntu", "name": "hello", "nodes": "1"}]})
    assert response.status_code == 200
    ready.refresh_from_db()
    assert (ready.report["pending"], ready.report["running"]) == (1, 1) and ready.reported_at
    assert ready.nodes.get(name="w1").slurm_state == "down~" and ready.nodes.get(name="w2").slurm_state == "idle~"
    # and the answer tells the head its partition (the max workers); nothing to return to service
    assert response.json() == {"partition": "batch", "partition_nodes": "w[1-2]", "resume": [], "power_down": []}


def report(client, cluster, states: dict):
    return post(client, cluster, "report/", cluster.head_token,
                {"nodes": [{"name": n, "state": s} for n, s in states.items()], "jobs": []}).json()


def test_a_refused_node_returns_to_service_once_the_allocation_can_carry_it(client, ready):
    # given a resume refused while the allocation was disabled: Slurm holds w2 DOWN
    ready.allocation.disabled_at = timezone.now()
    ready.allocation.save(update_fields=["disabled_at"])
    assert post(client, ready, "nodes/w2/resume/", ready.head_token).status_code == 409
    assert ready.nodes.get(name="w2").held
    # while it still cannot, the head's reports leave it down
    assert report(client, ready, {"w1": "idle~", "w2": "down~"})["resume"] == []
    # when the allocation is enabled again, the next report returns it to service, once
    ready.allocation.disabled_at = None
    ready.allocation.save(update_fields=["disabled_at"])
    assert report(client, ready, {"w1": "idle~", "w2": "down~"})["resume"] == ["w2"]
    node = ready.nodes.get(name="w2")
    assert (node.state, node.held, node.reason) == (NodeState.POWERED_DOWN, False, "")
    assert "carry a worker again" in ClusterEvent.objects.get(cluster=ready, kind=EventKind.RETURNED).reason
    assert report(client, ready, {"w1": "idle~", "w2": "down~"})["resume"] == []
    # and Slurm's next resume of it makes its server
    assert post(client, ready, "nodes/w2/resume/", ready.head_token).json()["state"] == NodeState.BUILDING


def test_max_workers_goes_up_and_down_and_the_head_is_told(client, ready):
    from clusters import services

    # when a member raises it beyond what the cluster was made with
    services.cluster_set_max_workers(user=ready.created_by, cluster=ready, max_workers=5)
    assert sorted(ready.nodes.filter(role="worker").values_list("name", flat=True)) == ["w1", "w2", "w3", "w4", "w5"]
    # then the head's next report gets the partition's new nodes, and Slurm may resume w5
    assert report(client, ready, {"w1": "idle~"})["partition_nodes"] == "w[1-5]"
    assert post(client, ready, "nodes/w5/resume/", ready.head_token).status_code == 202
    # and lowered again, w5 is beyond it
    services.cluster_set_max_workers(user=ready.created_by, cluster=ready, max_workers=1)
    assert report(client, ready, {"w1": "idle~"})["partition_nodes"] == "w1"
    assert post(client, ready, "nodes/w4/resume/", ready.head_token).status_code == 409
    assert [e.kind for e in ClusterEvent.objects.filter(cluster=ready, kind=EventKind.RESIZED)] == ["resized"] * 2


def test_only_the_clusters_own_token_reaches_it(client, ready, user):
    _, personal = token_create(user=user, name="mine", scope="write", expires_in_days=1)
    assert post(client, ready, "nodes/w1/resume/", personal).status_code == 404
    assert post(client, ready, "nodes/w1/resume/", "rcc_guessed").status_code == 401
    client.force_login(user)
    assert client.post(f"/api/v1/clusters/{ready.pk}/nodes/w1/resume/", {},
                       content_type="application/json").status_code in (403, 404)
    assert not LaunchRequest.objects.filter(name="demo-w1").exists()
    # and its token reaches no person's route
    assert client.get("/api/v1/allocations/", HTTP_AUTHORIZATION=f"Bearer {ready.head_token}").status_code == 401


def test_a_worker_whose_server_was_deleted_outside_the_cluster_is_powered_down(client, ready):
    from instances.models import Instance

    # given w1 active on a server that the CLI (or the allocation's enforcement) then deleted
    ready.nodes.filter(name="w1").update(state="active", server_id="srv-w1")
    Instance.objects.create(allocation=ready.allocation, server_id="srv-w1", name="demo-w1", status="DELETED",
                            deleted_at=timezone.now())
    # then the head's next report is answered: power it down in Slurm too
    assert report(client, ready, {"w1": "down", "w2": "idle~"})["power_down"] == ["w1"]
    node = ready.nodes.get(name="w1")
    assert (node.state, node.server_id) == (NodeState.POWERED_DOWN, "")
    assert "deleted outside the cluster" in ClusterEvent.objects.get(cluster=ready, kind=EventKind.SCALE_IN).reason
    assert report(client, ready, {"w1": "idle~", "w2": "idle~"})["power_down"] == []
