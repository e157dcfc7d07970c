"""Volumes, keys, security groups and public IPs through the pages, against the real local cloud
(issue 14, part C): what the page says is what Cinder, Nova and Neutron hold."""
import re

import pytest
from celery.app.task import Task
from django.urls import reverse

from allocations.models import KeystoneIdentity
from instances.models import CloudAction, Instance, SSHKey, Volume
from tests.cloud_sdk import connection_get
from tests.instances.integration_support import launch_via_form, wait_final

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def instances_allocation(devcloud, transactional_db):
    """Like integration_support's, with a PI whose Keystone user name no other test run uses at the
    same time (the factory's researcher<n> names repeat per process, and provisioning resets the
    password of a Keystone user of the same name)."""
    import uuid

    from tests.factories import UserFactory
    from tests.instances.integration_support import provision_directly, remove_directly

    pi = UserFactory(username=f"c-{uuid.uuid4().hex[:8]}")
    allocation = provision_directly(pi=pi, kind="research_gpu", title="Volumes and network test")
    connection_get().set_compute_quotas(allocation.openstack_project_id, instances=30, cores=200, ram=1024 * 1024)
    yield allocation
    remove_directly(allocation)


@pytest.fixture
def member_client(client, instances_allocation):
    client.force_login(instances_allocation.pi)
    return client


def rules_in_words(page: str, group: str) -> list[str]:
    section = page.split(f'data-group-name="{group}"')[1].split("</section>")[0]
    return re.findall(r'data-testid="rule"[^>]*>\s*<span>([^<]*)</span>', section)


def page_of(client, name: str, allocation) -> str:
    return client.get(f"{reverse(name)}?project={allocation.pk}").content.decode()


def create_volume(client, allocation, name: str, size_gb: int = 1):
    client.post(f"{reverse('instances:volume_create')}?project={allocation.pk}",
                {"project": allocation.pk, "name": name, "size_gb": size_gb})
    return CloudAction.objects.filter(action="create", target_name=name).latest("created_at")


def launch(client, allocation, name: str, **fields) -> Instance:
    row = wait_final(launch_via_form(client, allocation, flavor="m3.tiny", name=name, **fields))
    assert row.state == "succeeded", row.error
    return Instance.objects.get(name=name, deleted_at__isnull=True)


def test_a_volume_create_cinder_refuses_after_the_form_shows_as_a_failed_row_until_dismissed(
        member_client, instances_allocation, celery_worker_process, monkeypatch):
    pid = instances_allocation.openstack_project_id
    # given the form accepts a 2 GB volume, and the task is held until the project's storage quota
    # has been lowered to 1 GB behind the portal's back (as an admin or another member's volume would)
    held = []
    monkeypatch.setattr(Task, "apply_async", lambda task, *a, **k: held.append((task, a, k)))
    row = create_volume(member_client, instances_allocation, "data-1", size_gb=2)
    assert row.state == "queued" and len(held) == 1
    connection_get().block_storage.update_quota_set(pid, gigabytes=1)
    monkeypatch.undo()
    task, args, kwargs = held[0]
    task.apply_async(*args, **kwargs)
    # when the worker asks Cinder, it refuses
    row = wait_final(row)
    assert row.state == "failed"
    # then the volumes page has a row of its own for it, with Cinder's reason in numbers
    page = page_of(member_client, "instances:volumes", instances_allocation)
    failed = page[page.index('data-testid="volume-failed-row"'):].split("</tr>")[0]
    assert "Creating volume data-1 failed." in failed
    assert "volume storage quota (1 GB) would be exceeded by 1 GB: 2 GB asked for, 0 GB already in use." in failed
    assert not list(connection_get(project_id=pid).block_storage.volumes())
    # and Dismiss puts it away
    member_client.post(reverse("instances:volume_action_dismiss", args=[row.pk]))
    assert 'data-testid="volume-failed-row"' not in page_of(member_client, "instances:volumes", instances_allocation)


def test_attach_and_detach_through_the_page_show_the_device_cinder_reports(
        member_client, instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    cinder = connection_get(project_id=pid).block_storage
    instance = launch(member_client, instances_allocation, "withdisk")
    created = wait_final(create_volume(member_client, instances_allocation, "scratch"))
    assert created.state == "succeeded", created.error
    volume = Volume.objects.get(volume_id=created.target_id)

    def act(action, **data):
        before = set(CloudAction.objects.values_list("pk", flat=True))
        member_client.post(reverse("instances:volume_act", args=[volume.pk, action]), data)
        done = wait_final(CloudAction.objects.exclude(pk__in=before).get())
        assert done.state == "succeeded", f"{action}: {done.error}"

    # an attach with no instance chosen is refused before anything is asked of the cloud
    member_client.post(reverse("instances:volume_act", args=[volume.pk, "attach"]), {"server_id": ""})
    assert not CloudAction.objects.filter(action="attach").exists()
    act("attach", server_id=instance.server_id)
    device = cinder.get_volume(volume.volume_id).attachments[0]["device"]
    assert device.startswith("/dev/")
    row = page_of(member_client, "instances:volumes", instances_allocation).split(
        f'data-volume-id="{volume.volume_id}"')[1].split("</tr>")[0]
    assert f'<code data-testid="volume-device">{device}</code>' in row and ">withdisk</a>" in row
    assert f"sudo mount {device} /media/volume/scratch" in row
    act("detach")
    assert cinder.get_volume(volume.volume_id).status == "available"
    row = page_of(member_client, "instances:volumes", instances_allocation).split(
        f'data-volume-id="{volume.volume_id}"')[1].split("</tr>")[0]
    assert 'data-testid="volume-device"' not in row and "Choose an instance" in row


def test_a_security_group_and_its_rules_made_through_the_page_are_neutrons(member_client, instances_allocation):
    pid = instances_allocation.openstack_project_id
    neutron = connection_get(project_id=pid).network
    groups_url = f"{reverse('instances:security_groups')}?project={instances_allocation.pk}"
    member_client.post(groups_url, {"project": instances_allocation.pk, "name": "web", "description": "web server",
                                   "allow_ssh": "on", "allow_icmp": "on"})
    (group,) = [g for g in neutron.security_groups(project_id=pid) if g.name == "web"]

    # a duplicate name, in any case, is refused at the field and Neutron keeps one group
    page = member_client.post(groups_url, {"project": instances_allocation.pk, "name": "WEB"}).content.decode()
    assert "The project already has a security group named “WEB”; pick another name." in page
    assert [g.name.lower() for g in neutron.security_groups(project_id=pid)].count("web") == 1

    # a rule added from a preset, and one with a port range from one network
    add = reverse("instances:security_group_rule_add", args=[group.id])
    member_client.post(add, {"project": instances_allocation.pk, "preset": "https", "cidr": "0.0.0.0/0"})
    member_client.post(add, {"project": instances_allocation.pk, "protocol": "tcp", "ports": "8000-8080",
                             "cidr": "192.0.2.0/24"})
    rules = {(r.protocol, r.port_range_min, r.port_range_max, r.remote_ip_prefix): r.id
             for r in neutron.security_group_rules(security_group_id=group.id, direction="ingress")}
    assert ("tcp", 443, 443, "0.0.0.0/0") in rules and ("tcp", 8000, 8080, "192.0.2.0/24") in rules
    assert sorted(rules_in_words(page_of(member_client, "instances:security_groups", instances_allocation), "web")) == [
        "HTTPS (443/tcp) from anywhere", "Ping and other ICMP from anywhere", "SSH (22/tcp) from anywhere",
        "TCP ports 8000–8080 from 192.0.2.0/24"]

    # the same rule again is refused in words; a bad network is refused at its field
    page = member_client.post(add, {"project": instances_allocation.pk, "preset": "https",
                                    "cidr": "0.0.0.0/0"}).content.decode()
    assert "The group “web” already has this rule." in page
    page = member_client.post(add, {"project": instances_allocation.pk, "protocol": "udp", "ports": "53",
                                    "cidr": "192.0.2.7/24"}).content.decode()
    assert "did you mean 192.0.2.0/24" in page

    # removing a rule removes it from Neutron
    https = rules[("tcp", 443, 443, "0.0.0.0/0")]
    member_client.post(reverse("instances:security_group_rule_delete", args=[group.id, https]),
                       {"project": instances_allocation.pk})
    assert https not in {r.id for r in neutron.security_group_rules(security_group_id=group.id)}
    assert "HTTPS (443/tcp) from anywhere" not in rules_in_words(
        page_of(member_client, "instances:security_groups", instances_allocation), "web")


def test_a_generated_key_downloads_once_launches_with_a_nova_keypair_and_its_public_ip_names_it(
        member_client, instances_allocation, celery_worker_process):
    from cryptography.hazmat.primitives import serialization

    pid = instances_allocation.openstack_project_id
    pi = instances_allocation.pi
    # a key pair generated on the keys page: the private key downloads once
    page = member_client.post(reverse("instances:keys"), {"generate-name": "made-here"}).content.decode()
    link = re.search(r'href="(/keys/download/[^"]+)"', page).group(1)
    download = member_client.get(link)
    assert download.status_code == 200
    private = serialization.load_ssh_private_key(download.content, password=None)
    assert member_client.get(link).status_code == 404
    key = SSHKey.objects.get(user=pi, name="made-here")

    # launching with it makes the person's own Nova keypair holding that public key
    instance = launch(member_client, instances_allocation, "keyed", ssh_key=key.pk)
    server = connection_get(project_id=pid).compute.get_server(instance.server_id)
    ks_user = KeystoneIdentity.objects.get(user=pi).keystone_user_id
    keypair = connection_get().compute.get_keypair(server.key_name, user_id=ks_user)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert keypair.public_key.split()[:2] == public.decode().split()[:2]

    # a public IP allocated on the page and pointed at the server (as the CLI would) shows the server
    member_client.post(f"{reverse('instances:floating_ips')}?project={instances_allocation.pk}",
                       {"project": instances_allocation.pk})
    neutron = connection_get(project_id=pid).network
    (ip,) = list(neutron.ips(project_id=pid))
    (port,) = list(neutron.ports(device_id=instance.server_id))
    neutron.update_ip(ip, port_id=port.id)
    page = page_of(member_client, "instances:floating_ips", instances_allocation)
    row = page.split(f'data-address="{ip.floating_ip_address}"')[1].split("</tr>")[0]
    assert f'<a href="{reverse("instances:detail", args=[instance.pk])}">keyed</a>' in row
    assert port.fixed_ips[0]["ip_address"] not in row
