import pytest
from django.urls import reverse

from instances.models import LaunchRequest
from instances.services import launch_provision
from portal.cloud import compute

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop"


def post(client, allocation, **overrides):
    data = {"project": allocation.pk, "name": "worker", "image": "img-ubuntu", "flavor": "f-m3-small", "count": 1}
    data.update(overrides)
    return client.post(f"{reverse('instances:launch')}?project={allocation.pk}", data)


def test_launch_page_groups_flavors_and_shows_the_gpu_share(user_client, cloud, allocation):
    page = user_client.get(reverse("instances:launch")).content.decode()
    assert '<optgroup label="CPU">' in page and '<optgroup label="Large memory">' in page
    assert '<optgroup label="GPU (NVIDIA A100)">' in page
    assert "1/5 of an A100 (8 GB GPU memory)" in page and "1 whole A100" in page
    assert '<optgroup label="Featured">' in page


def test_cost_preview_is_su_per_hour_times_count(user_client, cloud, allocation):
    page = user_client.get(reverse("instances:launch_cost"), {"flavor": "f-m3-quad", "count": 3}).content.decode()
    assert "12.00 SU/hour" in page


@pytest.mark.parametrize("overrides, error", [
    ({"count": -1}, "greater than or equal to 1"),
    ({"count": 11}, "At most 10 instances"),
    ({"flavor": "f-nope"}, "Select a valid choice"),
    ({"name": "x" * 51}, "at most 50 characters"),
    ({"name": "bad name!"}, "letters, digits and hyphens"),
    ({"user_data": "#cloud-config\npackages: [git\n"}, "not valid YAML"),
    ({"user_data": "echo hi"}, "#cloud-config"),
    ({"new_key_name": "k", "new_public_key": "ssh-rsa nope"}, "do not match"),
])
def test_bad_input_gets_a_form_error_and_creates_nothing(user_client, cloud, allocation, overrides, error,
                                                        django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(user_client, allocation, **overrides)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not LaunchRequest.objects.exists() and not callbacks
    assert cloud.calls["server_create"] == 0


def test_a_flavor_the_allocation_kind_does_not_allow_is_refused(user_client, cloud, allocation):
    # Nova would not even list g3 to a CPU project; the portal refuses it too, in words
    allocation.kind = "research_cpu"
    allocation.save()
    response = post(user_client, allocation, flavor="f-g3-small")
    assert "g3.small is not available to Research (CPU) allocations" in response.content.decode()
    assert not LaunchRequest.objects.exists() and cloud.calls["server_create"] == 0


def test_launch_the_balance_cannot_carry_shows_the_shortfall(user_client, cloud, allocation):
    response = post(user_client, allocation, flavor="f-g3-xl", count=10)
    assert "SUs short" in response.content.decode()
    assert not LaunchRequest.objects.exists()


def test_valid_launch_records_the_request_and_enqueues_it_on_commit(user_client, cloud, allocation,
                                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as callbacks:
        response = post(user_client, allocation, count=3, user_data="#!/bin/sh\necho hi\n",
                        new_key_name="laptop", new_public_key=ED25519)
    row = LaunchRequest.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("instances:launch_detail", args=[row.pk])
    assert (row.count, row.flavor_name, row.state, row.ssh_key.name) == (3, "m3.small", "queued", "laptop")
    assert len(callbacks) == 1


@pytest.fixture
def no_enqueue(monkeypatch):
    monkeypatch.setattr("instances.tasks.launch_provision.apply_async", lambda *a, **k: None)


def make_request(allocation, user, **kw):
    return LaunchRequest.objects.create(allocation=allocation, project_id="proj-1", requested_by=user,
                                        name=kw.pop("name", "node"), flavor_id=kw.pop("flavor_id", "f-m3-small"),
                                        flavor_name="m3.small", image_id="img-ubuntu", **kw)


def test_provisioning_makes_every_server_tagged_and_succeeds(cloud, allocation, user):
    row = launch_provision(request_id=make_request(allocation, user, count=3).pk)
    assert row.state == "succeeded" and row.progress == 100
    servers = [s for s in cloud.servers.values() if s.status == "ACTIVE"]
    assert sorted(s.name for s in servers) == ["node-1", "node-2", "node-3"]
    assert {s.metadata[compute.META_REQUEST] for s in servers} == {str(row.idempotency_key)}
    assert {s.user_id for s in servers} == {f"ks-{user.pk}"}  # made as the person's own Keystone user
    assert row.instances.count() == 3


def test_a_redelivered_launch_finds_its_servers_and_makes_no_second_one(cloud, allocation, user):
    row = make_request(allocation, user, count=2)
    # the first delivery made one server and then its worker died
    cloud.add("node-1", status="BUILD", metadata={compute.META_REQUEST: str(row.idempotency_key),
                                                  compute.META_INDEX: "1"})
    LaunchRequest.objects.filter(pk=row.pk).update(state="running", attempts=1)
    row = launch_provision(request_id=row.pk)
    assert row.state == "succeeded"
    assert cloud.calls["server_create"] == 1
    assert len([s for s in cloud.servers.values() if s.status != "DELETED"]) == 2


def test_no_valid_host_fails_with_words_and_leaves_nothing_behind(cloud, allocation, user):
    cloud.build_status, cloud.fault = "ERROR", "No valid host was found. There are not enough hosts available."
    row = launch_provision(request_id=make_request(allocation, user, count=2, flavor_id="f-g3-xl").pk)
    assert row.state == "failed"
    assert "No host has capacity for this flavor" in row.error
    assert all(s.status == "DELETED" for s in cloud.servers.values())
