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


def test_the_first_pass_sends_the_creates_without_looking_for_earlier_ones_and_a_later_pass_looks(
        cloud, allocation, user):
    row = launch_provision(request_id=make_request(allocation, user, count=2).pk)
    assert row.state == "succeeded" and cloud.calls["server_create"] == 2 and row.create_attempts == 1
    assert cloud.calls["server_list"] == 1  # the check on them; nothing was looked up before the creates
    # a pass that finds the create counted already (its worker died after sending) looks first
    again = make_request(allocation, user, name="again", count=1, create_attempts=1)
    cloud.add("again-1", status="BUILD", metadata={compute.META_REQUEST: str(again.idempotency_key),
                                                   compute.META_INDEX: "1"})
    assert launch_provision(request_id=again.pk).state == "succeeded"
    assert cloud.calls["server_create"] == 2


def test_a_create_that_timed_out_but_ran_in_nova_leaves_no_second_server(cloud, allocation, user, monkeypatch):
    """A create that timed out may still be running in Nova when the retry looks, finds nothing and
    makes the server again: the launch deletes the second one before it calls itself done."""
    from portal.cloud.errors import CloudUnavailable

    row = make_request(allocation, user, count=2)
    real_create, late = cloud.server_create, []

    def create_times_out_once(**kwargs):
        if kwargs["name"] != "node-2":
            return real_create(**kwargs)
        if not late:
            late.append(kwargs)  # Nova is still working on it when the caller gives up
            raise CloudUnavailable("Compute did not answer in time.")
        made = real_create(**kwargs)  # the retry looked, found node-1 only, and made node-2 again;
        real_create(**late[0])  # then Nova finished the create that timed out
        return made

    monkeypatch.setattr(compute, "server_create", create_times_out_once)
    with pytest.raises(CloudUnavailable):
        launch_provision(request_id=row.pk)
    for _ in range(3):
        row = launch_provision(request_id=row.pk)
        if row.is_final:
            break
    assert row.state == "succeeded"
    alive = sorted(s.name for s in cloud.servers.values() if s.status != "DELETED")
    assert alive == ["node-1", "node-2"]
    assert sorted(row.server_ids) == sorted(s.id for s in cloud.servers.values() if s.status != "DELETED")


def test_no_valid_host_fails_with_words_and_leaves_nothing_behind(cloud, allocation, user):
    cloud.build_status, cloud.fault = "ERROR", "No valid host was found. There are not enough hosts available."
    row = launch_provision(request_id=make_request(allocation, user, count=2, flavor_id="f-g3-xl").pk)
    assert row.state == "failed"
    assert "No host has capacity for this flavor" in row.error
    assert all(s.status == "DELETED" for s in cloud.servers.values())


# --- Launches keep what works (issue 14) ------------------------------------------------------


from instances.models import CloudAction, Instance  # noqa: E402
from instances.services.launch import STEP_FLOATING_IP, launch_step_retry  # noqa: E402
from portal.cloud import network  # noqa: E402
from portal.cloud.errors import CloudError, QuotaExceeded  # noqa: E402

PUBLIC = network.Network("net-pub", "public", True, False, "admin", ("sub-pub",))
ISOLATED = network.Network("net-iso", "isolated", False, False, "proj-1", ("sub-iso",))
ROUTED = network.Network("net-routed", "routed", False, False, "proj-1", ("sub-routed",))
SHARED_ROUTED = network.Network("net-shared", "shared", False, True, "admin", ("sub-shared",))


class FakeNeutron:
    """Networks, routers and floating IPs, faked at the gateway functions."""

    def __init__(self):
        self.networks = [ISOLATED, ROUTED, PUBLIC]
        self.routers = [network.Router("r-1", "router", "proj-1", "net-pub", ("sub-routed",))]
        self.ips: dict[str, network.FloatingIP] = {}
        self.created_networks: list[str] = []
        self.deleted_ips: list[str] = []
        self.create_error: CloudError | None = None
        self.associate_error: CloudError | None = None
        self.server_networks: dict[str, list[str]] = {}

    def network_list(self, *, scope):
        return list(self.networks)

    def router_list(self, *, scope):
        return list(self.routers)

    def network_ensure_routed(self, *, scope, name, cidr, external_network_id):
        found = next((n for n in self.networks if n.name == name and n.project_id == scope.project_id), None)
        if found is not None:
            return found
        made = network.Network(f"net-{name}", name, False, False, scope.project_id, (f"sub-{name}",))
        self.networks.append(made)
        self.routers.append(network.Router(f"r-{name}", f"{name}-router", scope.project_id, external_network_id,
                                           made.subnet_ids))
        self.created_networks.append(made.id)
        return made

    def floating_ip_create(self, *, scope, external_network_id, description=""):
        if self.create_error:
            raise self.create_error
        fip = network.FloatingIP(f"fip-{len(self.ips) + 1}", f"203.0.113.{len(self.ips) + 10}", "DOWN", "", "",
                                 external_network_id)
        self.ips[fip.id] = fip
        self.descriptions = {**getattr(self, "descriptions", {}), fip.id: description}
        return fip

    def floating_ip_tagged_list(self, *, scope, description):
        return [self.ips[i] for i, d in getattr(self, "descriptions", {}).items() if d == description and i in self.ips]

    def floating_ip_associate(self, *, scope, floating_ip_id, server_id):
        if self.associate_error:
            raise self.associate_error
        from dataclasses import replace
        self.ips[floating_ip_id] = replace(self.ips[floating_ip_id], port_id=f"port-{server_id}", status="ACTIVE")
        return self.ips[floating_ip_id]

    def floating_ip_list(self, *, scope):
        return list(self.ips.values())

    def floating_ip_delete(self, *, scope, floating_ip_id):
        self.deleted_ips.append(floating_ip_id)
        self.ips.pop(floating_ip_id, None)


@pytest.fixture
def neutron(cloud, monkeypatch):
    fake = FakeNeutron()
    for name in ("network_list", "router_list", "network_ensure_routed", "floating_ip_create",
                 "floating_ip_tagged_list", "floating_ip_associate", "floating_ip_list", "floating_ip_delete"):
        monkeypatch.setattr(network, name, getattr(fake, name))
    create = compute.server_create

    def server_create(**kwargs):
        server = create(**kwargs)
        fake.server_networks[server.id] = kwargs["network_ids"]
        return server

    monkeypatch.setattr(compute, "server_create", server_create)
    return fake


@pytest.fixture(autouse=True)
def _routed_network_by_default(request):
    """Every launch test runs with Neutron faked (launches now look at routers)."""
    if "cloud" in request.fixturenames:
        request.getfixturevalue("neutron")


def test_automatic_network_is_one_routed_to_the_public_network_never_an_isolated_one(cloud, neutron, allocation, user):
    # given the project has an isolated network (listed first) and one a router connects to "public"
    row = launch_provision(request_id=make_request(allocation, user).pk)
    # then the server is on the routed one, and no new network was made
    assert row.state == "succeeded"
    assert list(neutron.server_networks.values()) == [["net-routed"]]
    assert neutron.created_networks == []


def test_automatic_network_prefers_the_projects_own_routed_network_to_a_shared_one(cloud, neutron, allocation, user):
    neutron.networks = [SHARED_ROUTED, ISOLATED, ROUTED, PUBLIC]
    neutron.routers.append(network.Router("r-shared", "shared-router", "admin", "net-pub", ("sub-shared",)))
    launch_provision(request_id=make_request(allocation, user).pk)
    assert list(neutron.server_networks.values()) == [["net-routed"]]


def test_automatic_network_makes_a_routed_network_when_the_project_has_only_an_isolated_one(
        cloud, neutron, allocation, user):
    neutron.networks, neutron.routers = [ISOLATED, PUBLIC], []
    row = launch_provision(request_id=make_request(allocation, user).pk)
    assert row.state == "succeeded"
    assert neutron.created_networks == ["net-portal-net"]
    assert list(neutron.server_networks.values()) == [["net-portal-net"]]


def test_a_launch_with_a_public_ip_records_it_and_succeeds(cloud, neutron, allocation, user):
    row = launch_provision(request_id=make_request(allocation, user, assign_floating_ip=True).pk)
    assert row.state == "succeeded", row.error
    assert row.floating_ip_ids == ["fip-1"] and neutron.ips["fip-1"].port_id


def test_a_public_ip_create_that_timed_out_but_ran_in_neutron_leaves_one_address(cloud, neutron, allocation, user,
                                                                                   monkeypatch):
    """Neutron made the address of a create that timed out only after the retry had looked and made
    another: the launch keeps the associated one and releases the second, so the project's public IP
    quota is not held by an address nobody knows of."""
    from portal.cloud.errors import CloudUnavailable

    real_create, late = neutron.floating_ip_create, []

    def create_times_out_once(**kwargs):
        if not late:
            late.append(kwargs)
            raise CloudUnavailable("Network did not answer in time.")
        made = real_create(**kwargs)
        real_create(**late[0])  # the create that timed out lands after the retry's
        return made

    monkeypatch.setattr(network, "floating_ip_create", create_times_out_once)
    row = make_request(allocation, user, assign_floating_ip=True)
    with pytest.raises(CloudUnavailable):
        launch_provision(request_id=row.pk)
    row = launch_provision(request_id=row.pk)
    assert row.state == "succeeded", row.error
    assert len(neutron.ips) == 1 and row.floating_ip_ids == list(neutron.ips)
    assert next(iter(neutron.ips.values())).port_id  # the one kept is the server's
    assert len(neutron.deleted_ips) == 1


def test_a_public_ip_failure_keeps_the_running_server_and_names_the_step(cloud, neutron, allocation, user):
    # given the project's public IP quota is used up
    neutron.create_error = QuotaExceeded("The project has no public IPs left (its quota is 0). Release one it "
                                         "does not need on the Public IPs page, or ask for a larger quota.")
    # when a launch asks for a public IP
    row = launch_provision(request_id=make_request(allocation, user, assign_floating_ip=True).pk)
    # then the launch failed at that step, in words, and the running server was not deleted
    assert row.state == "failed" and row.failed_step == STEP_FLOATING_IP
    assert row.error.startswith("The instance is running, but assigning a public IP failed: the project has no "
                                "public IPs left (its quota is 0).")
    assert "Nothing was left behind" not in row.error
    assert cloud.calls["server_delete"] == 0
    assert [s.status for s in cloud.servers.values()] == ["ACTIVE"]
    instance = Instance.objects.get()
    assert instance.deleted_at is None and instance.launch_request_id == row.pk


def test_an_unreachable_network_keeps_the_server_and_releases_the_address_it_could_not_point(
        cloud, neutron, allocation, user):
    neutron.associate_error = CloudError(
        "The public network “public” is not reachable from the instance's network “isolated”, which has no "
        "router to it.", detail="External network net-pub is not reachable from subnet sub-iso.")
    row = launch_provision(request_id=make_request(allocation, user, count=2, assign_floating_ip=True,
                                                   network_id="net-iso").pk)
    assert row.state == "failed" and row.failed_step == STEP_FLOATING_IP
    assert row.error.startswith("The 2 instances are running, but assigning a public IP failed: the public network "
                                "“public” is not reachable from the instance's network “isolated”")
    assert cloud.calls["server_delete"] == 0
    # the address taken for nothing went back to the pool
    assert neutron.deleted_ips == ["fip-1"] and row.floating_ip_ids == []


def test_a_launch_where_some_servers_fail_keeps_the_ones_that_run(cloud, neutron, allocation, user, monkeypatch):
    create = compute.server_create

    def second_fails(**kwargs):
        server = create(**kwargs)
        if kwargs["metadata"][compute.META_INDEX] == "2":
            cloud.set(server.id, status="ERROR", fault="No valid host was found.")
        return server

    monkeypatch.setattr(compute, "server_create", second_fails)
    row = launch_provision(request_id=make_request(allocation, user, count=2).pk)
    assert row.state == "failed"
    assert row.error.startswith("1 of 2 instances are running and were kept; the other 1 never became usable: "
                                "no host has capacity")
    statuses = {s.name: s.status for s in cloud.servers.values()}
    assert statuses == {"node-1": "ACTIVE", "node-2": "DELETED"}
    assert list(Instance.objects.filter(deleted_at__isnull=True).values_list("name", flat=True)) == ["node-1"]


def test_the_launch_page_names_the_failed_step_and_try_again_assigns_the_ip(
        user_client, cloud, neutron, allocation, user, django_capture_on_commit_callbacks):
    neutron.create_error = QuotaExceeded("The project has no public IPs left (its quota is 0).")
    row = launch_provision(request_id=make_request(allocation, user, assign_floating_ip=True).pk)
    page = user_client.get(reverse("instances:launch_detail", args=[row.pk])).content.decode()
    assert "assigning public IP — failed" in page
    assert "The instance is running, but assigning a public IP failed" in page
    assert ">Try again</button>" in page and "every 2s" not in page
    # when the person tries again, the server action that assigns a public IP is queued
    with django_capture_on_commit_callbacks() as callbacks:
        response = user_client.post(reverse("instances:launch_retry", args=[row.pk]))
    assert response.status_code == 302 and len(callbacks) == 1
    action = CloudAction.objects.get()
    assert (action.action, action.target_id, action.state) == ("floating_ip_assign", Instance.objects.get().server_id,
                                                               "queued")
    # the page follows it (polls) and offers no second try meanwhile
    page = user_client.get(reverse("instances:launch_detail", args=[row.pk])).content.decode()
    assert "every 2s" in page and ">Try again</button>" not in page and "Assign public IP…" in page


def test_try_again_is_refused_for_a_launch_without_a_failed_step(cloud, neutron, allocation, user):
    from instances.services.actions import ActionNotAllowed

    row = launch_provision(request_id=make_request(allocation, user).pk)
    with pytest.raises(ActionNotAllowed, match="no step to try again"):
        launch_step_retry(user=user, launch=row)
    assert not CloudAction.objects.exists()
