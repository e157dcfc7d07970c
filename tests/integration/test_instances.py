"""Instances against the real local cloud, a real Celery worker and the web UI (Django client)."""
import base64
import uuid

import openstack
import pytest
from django.urls import reverse

from allocations.models import KeystoneIdentity
from instances.models import Instance, LaunchRequest
from instances.services import project_sync
from tests.cloud_sdk import connection_get
from tests.fixtures.celery_worker import wait_for
from tests.instances.integration_support import (
    act,
    instances_allocation,
    launch_via_form,
    nova,
    nova_servers,
    start_worker,
    wait_final,
    wait_nova_empty,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
__all__ = ["instances_allocation"]


@pytest.fixture
def member_client(client, instances_allocation):
    client.force_login(instances_allocation.pi)
    return client


def test_a_server_made_with_openstacksdk_shows_after_a_sync_as_outside_the_portal(member_client, instances_allocation):
    # given a researcher creates a server from the CLI, not through the portal
    pid = instances_allocation.openstack_project_id
    conn = connection_get(project_id=pid)
    server = conn.compute.create_server(
        name="made-by-cli", flavor_id=conn.compute.find_flavor("m3.tiny", ignore_missing=False).id,
        image_id=conn.image.find_image("Featured-Ubuntu24", ignore_missing=False).id, networks="none")
    conn.compute.wait_for_server(server, status="ACTIVE", wait=120, interval=1)
    # when the mirror syncs
    project_sync(allocation=instances_allocation)
    # then the list page shows it, its creator "outside the portal"
    page = member_client.get(reverse("instances:list")).content.decode()
    assert "made-by-cli" in page and "outside the portal" in page and "Featured-Ubuntu24" in page
    # and once it is deleted outside the portal, the next sync drops it
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=60)
    project_sync(allocation=instances_allocation)
    assert "made-by-cli" not in member_client.get(reverse("instances:list")).content.decode()


def test_launch_one_and_three_cpu_and_one_vgpu_instance_through_the_web_ui(
        member_client, instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    one = launch_via_form(member_client, instances_allocation, flavor="m3.small", name="single")
    three = launch_via_form(member_client, instances_allocation, flavor="m3.small", name="trio", count=3,
                            user_data="#cloud-config\npackages: [htop]\n")
    gpu = launch_via_form(member_client, instances_allocation, flavor="g3.small", name="gpu")
    for row in (one, three, gpu):
        row = wait_final(row)
        assert row.state == "succeeded", row.error
        page = member_client.get(reverse("instances:launch_detail", args=[row.pk])).content.decode()
        assert "succeeded" in page
    servers = {s.name: s for s in nova_servers(pid)}
    assert sorted(servers) == ["gpu", "single", "trio-1", "trio-2", "trio-3"]
    assert all(s.status == "ACTIVE" for s in servers.values())
    # made as the PI's own Keystone user, so the CLI and Nova's records name them
    pi_keystone = KeystoneIdentity.objects.get(user=instances_allocation.pi).keystone_user_id
    assert {s.user_id for s in servers.values()} == {pi_keystone}
    # the vGPU instance really holds a VGPU in Placement
    held = connection_get().placement.get(f"/allocations/{servers['gpu'].id}", microversion="1.28").json()
    assert sum(a["resources"].get("VGPU", 0) for a in held["allocations"].values()) == 1
    page = member_client.get(reverse("instances:list")).content.decode()
    assert page.count('data-testid="instance-row"') == 5 and "1/5 of an A100" in page


@pytest.fixture
def greedy_vgpu_flavor():
    conn = connection_get()
    name = f"g3.test-{uuid.uuid4().hex[:6]}"
    flavor = conn.compute.create_flavor(name=name, vcpus=1, ram=512, disk=20, is_public=True)
    conn.compute.create_flavor_extra_specs(flavor, {"resources:VGPU": "64", "portal:family": "gpu",
                                                    "portal:gpu_fraction": "64"})
    yield name
    conn.compute.delete_flavor(flavor, ignore_missing=True)


def test_a_flavor_asking_for_more_vgpus_than_exist_fails_clearly_and_leaves_nothing(
        member_client, instances_allocation, celery_worker_process, greedy_vgpu_flavor):
    row = wait_final(launch_via_form(member_client, instances_allocation, flavor=greedy_vgpu_flavor, name="greedy"))
    assert row.state == "failed"
    page = member_client.get(reverse("instances:launch_detail", args=[row.pk])).content.decode()
    assert "No host has capacity for this flavor" in page
    wait_nova_empty(instances_allocation.openstack_project_id)  # the failed launch deletes its server


def test_every_action_changes_the_servers_real_state_in_nova(member_client, instances_allocation,
                                                              celery_worker_process):
    pid = instances_allocation.openstack_project_id
    row = wait_final(launch_via_form(member_client, instances_allocation, flavor="m3.small", name="acted"))
    assert row.state == "succeeded", row.error
    instance = Instance.objects.get(name="acted", deleted_at__isnull=True)
    server_id = instance.server_id

    def nova_server():
        return nova(pid).get_server(server_id)

    steps = [("stop", "SHUTOFF"), ("start", "ACTIVE"), ("reboot_soft", "ACTIVE"), ("reboot_hard", "ACTIVE"),
             ("suspend", "SUSPENDED"), ("resume", "ACTIVE"), ("lock", "ACTIVE"), ("unlock", "ACTIVE"),
             ("shelve", "SHELVED_OFFLOADED"), ("unshelve", "ACTIVE")]
    for action, status in steps:
        done = act(member_client, instance, action)
        assert done.state == "succeeded", f"{action}: {done.error}"
        server = nova_server()
        assert server.status == status, action
        if action in ("lock", "unlock"):
            assert server.is_locked == (action == "lock")
        instance.refresh_from_db()
        assert instance.status == status  # the mirror follows at once
    # re-image (how a class seat gets a clean disk): Nova rebuilds it with the new user data, and the
    # portal's row no longer holds that user data once done
    from instances.models import CloudAction
    from instances.services import instance_act

    user_data = "#cloud-config\nhostname: acted-again\n"
    rebuilt = wait_final(instance_act(user=instance.launch_request.requested_by, instance=instance, action="rebuild",
                                      params={"user_data": user_data}))
    assert rebuilt.state == "succeeded", rebuilt.error
    assert "user_data" not in CloudAction.objects.get(pk=rebuilt.pk).params
    shown = connection_get().compute.get(f"/servers/{server_id}",
                                         microversion="2.3").json()["server"]["OS-EXT-SRV-ATTR:user_data"]
    assert base64.b64decode(shown).decode() == user_data and nova_server().status == "ACTIVE"
    # public IP
    assert act(member_client, instance, "floating_ip_assign").state == "succeeded"
    assert list(connection_get(project_id=pid).network.ips(project_id=pid))
    # image
    done = act(member_client, instance, "image_create", name="acted-snap")
    assert done.state == "succeeded", done.error
    assert connection_get(project_id=pid).image.find_image("acted-snap") is not None
    # delete
    done = act(member_client, instance, "delete")
    assert done.state == "succeeded"
    # Nova said DELETED; the record goes a moment later
    wait_for(lambda: nova(pid).find_server(server_id, ignore_missing=True) is None, timeout=30,
             message="the server gone from Nova")
    connection_get(project_id=pid).image.delete_image(
        connection_get(project_id=pid).image.find_image("acted-snap"), ignore_missing=True)


def test_resize_then_revert_and_confirm_change_the_flavor_in_nova(
        member_client, instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    row = wait_final(launch_via_form(member_client, instances_allocation, flavor="m3.small", name="grows"))
    assert row.state == "succeeded", row.error
    instance = Instance.objects.get(name="grows", deleted_at__isnull=True)
    quad = connection_get().compute.find_flavor("m3.quad").id
    done = act(member_client, instance, "resize", flavor_id=quad, confirmed="yes")
    assert done.state == "succeeded", done.error
    assert nova(pid).get_server(instance.server_id).status == "VERIFY_RESIZE"
    assert act(member_client, instance, "resize_revert").state == "succeeded"
    assert nova(pid).get_server(instance.server_id).flavor.original_name == "m3.small"
    assert act(member_client, instance, "resize", flavor_id=quad, confirmed="yes").state == "succeeded"
    assert act(member_client, instance, "resize_confirm").state == "succeeded"
    server = nova(pid).get_server(instance.server_id)
    assert (server.status, server.flavor.original_name) == ("ACTIVE", "m3.quad")


def test_volume_create_attach_detach_extend_delete_change_real_cinder_state(
        member_client, instances_allocation, celery_worker_process):
    from instances.models import CloudAction, Volume

    pid = instances_allocation.openstack_project_id
    cinder = connection_get(project_id=pid).block_storage
    row = wait_final(launch_via_form(member_client, instances_allocation, flavor="m3.small", name="withvol"))
    assert row.state == "succeeded", row.error
    instance = Instance.objects.get(name="withvol", deleted_at__isnull=True)
    member_client.post(f"{reverse('instances:volume_create')}?project={instances_allocation.pk}",
                       {"project": instances_allocation.pk, "name": "data", "size_gb": 2})
    created = wait_final(CloudAction.objects.get(action="create"))
    assert created.state == "succeeded", created.error
    volume = Volume.objects.get(volume_id=created.target_id)
    assert cinder.get_volume(volume.volume_id).status == "available"

    def volume_act(action, **data):
        before = set(CloudAction.objects.values_list("pk", flat=True))
        member_client.post(reverse("instances:volume_act", args=[volume.pk, action]), data)
        done = wait_final(CloudAction.objects.exclude(pk__in=before).get())
        assert done.state == "succeeded", f"{action}: {done.error}"
        volume.refresh_from_db()
        return cinder.get_volume(volume.volume_id) if action != "delete" else None

    real = volume_act("attach", server_id=instance.server_id)
    assert real.status == "in-use" and real.attachments[0]["server_id"] == instance.server_id
    assert "withvol" in member_client.get(reverse("instances:volumes")).content.decode()
    assert volume_act("detach").status == "available"
    assert volume_act("extend", size_gb=3).size == 3
    volume_act("delete")
    with pytest.raises(openstack.exceptions.NotFoundException):
        cinder.get_volume(volume.volume_id)


def test_boot_from_a_new_volume_when_the_root_disk_is_larger_than_the_flavors(
        member_client, instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    row = wait_final(launch_via_form(member_client, instances_allocation, flavor="m3.small", name="bigroot",
                                     root_disk_gb=30))
    assert row.state == "succeeded", row.error
    server = nova_servers(pid)[0]
    volumes = list(connection_get(project_id=pid).block_storage.volumes())
    assert [v.size for v in volumes] == [30]
    assert volumes[0].attachments[0]["server_id"] == server.id


def test_killing_the_worker_mid_launch_still_makes_exactly_one_server(
        member_client, instances_allocation, tmp_path, settings):
    """The stale-launch sweep re-enqueues the launch; lookup-before-create finds the server already made."""
    import os
    import signal

    from instances.services import launch_requests_resume
    queue = f"cloud.kill-{uuid.uuid4().hex[:6]}"
    settings.PORTAL_CLOUD_QUEUE = queue  # launches go to this test's own workers only
    pid = instances_allocation.openstack_project_id
    first = start_worker(tmp_path / "first.log", queue)
    try:
        row = launch_via_form(member_client, instances_allocation, flavor="m3.small", name="survivor")
        wait_for(lambda: LaunchRequest.objects.get(pk=row.pk).server_ids, timeout=60, interval=0.02,
                 message="the server to be created")
        os.kill(first.pid, signal.SIGSTOP)  # freeze it at once (the server needs ~1 s to go ACTIVE)...
        os.kill(first.pid, signal.SIGKILL)  # ...then kill it, as a lost machine would
    finally:
        first.kill()
        first.wait(timeout=10)
    assert not LaunchRequest.objects.get(pk=row.pk).is_final  # it really died mid-flight
    second = start_worker(tmp_path / "second.log", queue)
    try:
        assert launch_requests_resume(stale_seconds=0) == 1  # what the beat sweep does after a while
        row = wait_final(row)
    finally:
        second.terminate()
        second.wait(timeout=20)
    assert row.state == "succeeded", row.error
    assert [s.name for s in nova_servers(pid)] == ["survivor"]


def test_boot_from_an_existing_bootable_volume(member_client, instances_allocation, celery_worker_process):
    from instances.models import CloudAction

    pid = instances_allocation.openstack_project_id
    cinder = connection_get(project_id=pid).block_storage
    member_client.post(f"{reverse('instances:volume_create')}?project={instances_allocation.pk}",
                       {"project": instances_allocation.pk, "name": "rootvol", "size_gb": 20})
    created = wait_final(CloudAction.objects.get(action="create"))
    assert created.state == "succeeded", created.error
    cinder.set_volume_bootable_status(created.target_id, True)  # as if it held an OS
    project_sync(allocation=instances_allocation, full=True)
    page = member_client.get(f"{reverse('instances:launch')}?project={instances_allocation.pk}").content.decode()
    assert "rootvol (20 GB)" in page
    row = wait_final(launch_via_form(member_client, instances_allocation, flavor="m3.small", name="fromvol",
                                     image="Featured-Ubuntu24", boot_volume=created.target_id))
    assert row.state == "succeeded", row.error
    server = nova_servers(pid)[0]
    volume = cinder.get_volume(created.target_id)
    assert volume.status == "in-use" and volume.attachments[0]["server_id"] == server.id


def test_launch_with_assign_a_public_ip_gets_a_floating_ip_in_neutron(
        member_client, instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    row = wait_final(launch_via_form(member_client, instances_allocation, flavor="m3.tiny", name="reachable",
                                     assign_floating_ip="on"))
    assert row.state == "succeeded", row.error
    server = nova_servers(pid)[0]
    network = connection_get(project_id=pid).network
    ports = {p.id for p in network.ports(device_id=server.id)}
    floating = [ip for ip in network.ips(project_id=pid) if ip.port_id in ports]
    assert len(floating) == 1 and floating[0].floating_ip_address.startswith("203.0.113.")
