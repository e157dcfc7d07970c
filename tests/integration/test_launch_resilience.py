"""Launches that keep what works, against the real local cloud and a real Celery worker (issue 14).

A project with an isolated network (no router) and one routed to the public network: "Automatic"
picks the routed one; a public-IP step that fails leaves the ACTIVE server running, names the step
and offers Try again; deleting an instance releases the public IP the portal made for it.
"""
import pytest
from django.urls import reverse

from instances.models import CloudAction, Instance
from instances.services import project_sync
from tests.cloud_sdk import connection_get
from tests.fixtures.celery_worker import wait_for
from tests.instances.integration_support import (
    instances_allocation,
    launch_via_form,
    nova,
    nova_servers,
    wait_final,
    wait_nova_empty,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
__all__ = ["instances_allocation"]


@pytest.fixture
def member_client(client, instances_allocation):
    client.force_login(instances_allocation.pi)
    return client


def public_network_id() -> str:
    return connection_get().network.find_network("public", ignore_missing=False).id


def make_network(project_id: str, name: str, cidr: str, *, routed: bool):
    """A network with one subnet in the project, made as a member with the SDK (as with the CLI);
    `routed`: with a router whose gateway is the public network."""
    neutron = connection_get(project_id=project_id).network
    net = neutron.create_network(name=name)
    subnet = neutron.create_subnet(network_id=net.id, name=f"{name}-subnet", ip_version=4, cidr=cidr)
    if routed:
        router = neutron.create_router(name=f"{name}-router",
                                       external_gateway_info={"network_id": public_network_id()})
        neutron.add_interface_to_router(router, subnet_id=subnet.id)
    return net


def floating_ips_of(project_id: str, server_id: str) -> list:
    neutron = connection_get(project_id=project_id).network
    ports = {p.id for p in neutron.ports(device_id=server_id)}
    return [ip for ip in neutron.ips(project_id=project_id) if ip.port_id in ports]


def set_floating_ip_quota(project_id: str, value: int) -> None:
    connection_get().network.update_quota(project_id, floating_ips=value)  # the cloud admin, as an operator would


def instance_page(client, instance) -> str:
    return client.get(reverse("instances:detail", args=[instance.pk])).content.decode()


def test_automatic_network_picks_the_routed_network_and_the_launch_gets_its_public_ip(
        member_client, instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    # given a project whose first network is isolated (made earlier with the CLI) and a second is routed
    make_network(pid, "lab-isolated", "10.10.0.0/24", routed=False)
    make_network(pid, "lab-routed", "10.20.0.0/24", routed=True)
    # when a launch asks for a public IP on the "Automatic" network
    row = wait_final(launch_via_form(member_client, instances_allocation, flavor="m3.tiny", name="reach",
                                     assign_floating_ip="on"))
    # then it is ACTIVE on the routed network, with a public IP Neutron points at it
    assert row.state == "succeeded", row.error
    server = nova_servers(pid)[0]
    assert server.status == "ACTIVE" and set(server.addresses) == {"lab-routed"}
    floating = floating_ips_of(pid, server.id)
    assert len(floating) == 1 and floating[0].floating_ip_address.startswith("203.0.113.")
    # and no other network was made for it
    names = {n.name for n in connection_get(project_id=pid).network.networks(project_id=pid)}
    assert names == {"lab-isolated", "lab-routed"}
    # the instance page says how to connect, with the image's login user
    instance = Instance.objects.get(server_id=server.id)

    def page_shows_ssh():
        project_sync(allocation=instances_allocation, full=True)
        return f"ssh ubuntu@{floating[0].floating_ip_address}" in instance_page(member_client, instance)

    wait_for(page_shows_ssh, timeout=90, interval=2, message="the instance page to show the ssh command")


def test_only_an_isolated_network_makes_a_routed_one_for_the_launch(
        member_client, instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    make_network(pid, "lab-isolated", "10.10.0.0/24", routed=False)
    row = wait_final(launch_via_form(member_client, instances_allocation, flavor="m3.tiny", name="routed",
                                     assign_floating_ip="on"))
    assert row.state == "succeeded", row.error
    server = nova_servers(pid)[0]
    assert set(server.addresses) == {"portal-net"}
    assert len(floating_ips_of(pid, server.id)) == 1
    neutron = connection_get(project_id=pid).network
    router = neutron.find_router("portal-net-router", ignore_missing=False)
    assert router.external_gateway_info["network_id"] == public_network_id()


def test_a_public_ip_failure_keeps_the_active_server_and_try_again_gets_the_ip(
        member_client, instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    make_network(pid, "lab-routed", "10.20.0.0/24", routed=True)
    # given the launch form accepted a public IP (the quota had room when it checked) ...
    row = launch_via_form(member_client, instances_allocation, flavor="m3.tiny", name="kept", assign_floating_ip="on")
    # ... and the project may hold none by the time the server is up (an operator lowered the quota)
    set_floating_ip_quota(pid, 0)
    row = wait_final(row)
    # then the launch failed at that step, in words, and the server is still ACTIVE in Nova
    assert (row.state, row.failed_step) == ("failed", "assigning public IP")
    assert row.error.startswith("The instance is running, but assigning a public IP failed: the project has no "
                                "public IPs left (its quota is 0).")
    [server] = nova_servers(pid)
    assert server.status == "ACTIVE" and floating_ips_of(pid, server.id) == []
    page = member_client.get(reverse("instances:launch_detail", args=[row.pk])).content.decode()
    assert "assigning public IP — failed" in page and ">Try again</button>" in page
    assert "Nothing was left behind" not in page
    # when the quota is back and the person tries again
    set_floating_ip_quota(pid, 4)
    member_client.post(reverse("instances:launch_retry", args=[row.pk]))
    action = wait_final(CloudAction.objects.get(action="floating_ip_assign"))
    # then the same server has its public IP
    assert action.state == "succeeded", action.error
    [floating] = floating_ips_of(pid, server.id)
    assert floating.floating_ip_address == action.result["address"]
    assert nova(pid).get_server(server.id).status == "ACTIVE"


def test_a_chosen_isolated_network_keeps_the_server_says_why_and_leaves_no_address_taken(
        member_client, instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    isolated = make_network(pid, "lab-isolated", "10.10.0.0/24", routed=False)
    row = wait_final(launch_via_form(member_client, instances_allocation, flavor="m3.tiny", name="island",
                                     network=isolated.id, assign_floating_ip="on"))
    assert (row.state, row.failed_step) == ("failed", "assigning public IP")
    assert ("assigning a public IP failed: the public network “public” is not reachable from the instance's "
            "network “lab-isolated”") in row.error
    [server] = nova_servers(pid)
    assert server.status == "ACTIVE"
    assert list(connection_get(project_id=pid).network.ips(project_id=pid)) == []  # the address went back
    # the instance page names it too, with Try again
    page = instance_page(member_client, Instance.objects.get(server_id=server.id))
    assert 'data-testid="launch-failure"' in page and ">Try again</button>" in page


def test_deleting_an_instance_releases_the_public_ip_the_portal_made_unless_kept(
        member_client, instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    make_network(pid, "lab-routed", "10.20.0.0/24", routed=True)
    row = wait_final(launch_via_form(member_client, instances_allocation, flavor="m3.tiny", name="pair", count=2,
                                     assign_floating_ip="on"))
    assert row.state == "succeeded", row.error
    neutron = connection_get(project_id=pid).network
    addresses = {}
    for server in nova_servers(pid):
        [fip] = floating_ips_of(pid, server.id)
        addresses[server.name] = fip
    wait_for(lambda: project_sync(allocation=instances_allocation, full=True) is not None and all(
        Instance.objects.get(name=name, deleted_at__isnull=True).floating_ips for name in addresses),
        timeout=90, interval=2, message="the mirror to show both public IPs")
    released, kept = (Instance.objects.get(name=n, deleted_at__isnull=True) for n in ("pair-1", "pair-2"))
    page = instance_page(member_client, kept)
    assert f"Keep the public IP {addresses['pair-2'].floating_ip_address}" in page

    def delete(instance, **data):
        before = set(CloudAction.objects.values_list("pk", flat=True))
        member_client.post(reverse("instances:act", args=[instance.pk, "delete"]), data)
        return wait_final(CloudAction.objects.exclude(pk__in=before).get())

    assert delete(released).state == "succeeded"
    assert neutron.find_ip(addresses["pair-1"].id, ignore_missing=True) is None
    assert delete(kept, keep_floating_ip=addresses["pair-2"].floating_ip_address).state == "succeeded"
    still = neutron.get_ip(addresses["pair-2"].id)
    assert still.floating_ip_address == addresses["pair-2"].floating_ip_address and not still.port_id
    wait_nova_empty(pid)  # a delete the portal saw succeed (DELETED) still takes Nova a while to finish


def test_the_console_page_shows_the_servers_log_from_nova(member_client, instances_allocation, celery_worker_process):
    row = wait_final(launch_via_form(member_client, instances_allocation, flavor="m3.tiny", name="talky"))
    assert row.state == "succeeded", row.error
    instance = Instance.objects.get(name="talky", deleted_at__isnull=True)
    expected = nova(instances_allocation.openstack_project_id).get_server_console_output(instance.server_id)["output"]
    page = member_client.get(reverse("instances:console", args=[instance.pk])).content.decode()
    assert expected.strip().splitlines()[0] in page and 'data-testid="console-log"' in page
    # the devcloud has no VNC: the link says so in words and leads back to our page
    response = member_client.get(reverse("instances:console_vnc", args=[instance.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("instances:console", args=[instance.pk])
    assert "The graphical console is not available" in response.content.decode()
