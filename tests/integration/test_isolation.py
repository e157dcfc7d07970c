"""Tenant isolation against the real local cloud: two people in two allocations.

B makes one of everything in B's project with openstacksdk, as B would from the CLI. A then
tries every page, every form's choices and every POST that takes an id, fed B's ids. The
portal acts as A's own Keystone identity scoped to A's project, so OpenStack itself refuses; the
portal's own checks answer first with a 404 or a form error. Afterwards nothing exists that A
made, in B's project, A's project or the portal's own project.
"""
from __future__ import annotations

import time
import uuid

import openstack
import pytest
from django.urls import reverse

from allocations import credentials as credential_service
from allocations.models import ApplicationCredential, KeystoneIdentity, Membership
from allocations.scopes import member_scope
from instances.models import CloudAction, Instance, LaunchRequest, SSHKey, Volume
from instances.services import project_sync
from portal import crypto
from portal.cloud import compute, image, network
from portal.cloud.errors import NotFound
from tests.cloud_sdk import connection_as, connection_get
from tests.factories import UserFactory
from tests.instances.integration_support import provision_directly, remove_directly

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _public_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH).decode() + " b@laptop"


PUBKEY = _public_key()


def as_person(user, allocation) -> openstack.connection.Connection:
    """The person's own CLI: their Keystone user and password, scoped to the allocation's project."""
    ks = KeystoneIdentity.objects.get(user=user)
    return connection_as(username=ks.keystone_username, password=crypto.decrypt(ks.encrypted_password),
                         project_id=allocation.openstack_project_id)


@pytest.fixture
def two_projects(devcloud):
    a_user, b_user = UserFactory(email="alice@a.example.org"), UserFactory(email="bob@b.example.org")
    a = provision_directly(pi=a_user, kind="research_cpu", title="Alice's lab")
    b = provision_directly(pi=b_user, kind="research_cpu", title="Bob's lab")
    yield a, b
    for allocation in (a, b):
        remove_directly(allocation)


@pytest.fixture
def bobs_things(two_projects):
    """One of each kind of thing, made in B's project by B with openstacksdk."""
    _, b = two_projects
    conn = as_person(b.pi, b)
    tag = uuid.uuid4().hex[:6]
    public = conn.network.find_network("public")
    net = conn.network.create_network(name=f"bob-net-{tag}")
    subnet = conn.network.create_subnet(network_id=net.id, ip_version=4, cidr="10.42.0.0/24", name=f"bob-sub-{tag}")
    router = conn.network.create_router(name=f"bob-router-{tag}", external_gateway_info={"network_id": public.id})
    conn.network.add_interface_to_router(router, subnet_id=subnet.id)
    port = conn.network.create_port(network_id=net.id, name=f"bob-port-{tag}")
    group = conn.network.create_security_group(name=f"bob-sg-{tag}")
    fip = conn.network.create_ip(floating_network_id=public.id)
    img = conn.image.create_image(name=f"bob-image-{tag}", disk_format="raw", container_format="bare",
                                  visibility="private", allow_duplicates=True)
    conn.image.put(f"/images/{img.id}/file", data=b"bob's private image\n" + b"\0" * 4096,
                   headers={"Content-Type": "application/octet-stream"})
    keypair = conn.compute.create_keypair(name=f"bob-key-{tag}", public_key=PUBKEY)
    server = conn.compute.create_server(
        name=f"bob-server-{tag}", flavor_id=conn.compute.find_flavor("m3.tiny", ignore_missing=False).id,
        image_id=conn.image.find_image("Featured-Ubuntu24", ignore_missing=False).id, networks=[{"uuid": net.id}])
    volume = conn.block_storage.create_volume(name=f"bob-volume-{tag}", size=1)
    conn.block_storage.wait_for_status(volume, status="available", wait=60, interval=0.5)
    snapshot = conn.block_storage.create_snapshot(volume_id=volume.id, name=f"bob-snap-{tag}")
    conn.block_storage.wait_for_status(snapshot, status="available", wait=60, interval=0.5)
    conn.compute.wait_for_server(server, status="ACTIVE", wait=120, interval=0.5)
    deadline = time.monotonic() + 30
    while conn.image.get_image(img.id).status != "active" and time.monotonic() < deadline:
        time.sleep(0.3)
    # the portal's mirror of B's project knows them (as it would after a sync)
    project_sync(allocation=b)
    things = {
        "server": server.id, "volume": volume.id, "snapshot": snapshot.id, "image": img.id, "network": net.id,
        "subnet": subnet.id, "router": router.id, "port": port.id, "security_group": group.id,
        "security_group_name": group.name, "floating_ip": fip.id, "floating_ip_address": fip.floating_ip_address,
        "keypair": keypair.name, "conn": conn,
        "instance_pk": Instance.objects.get(server_id=server.id).pk,
        "volume_pk": Volume.objects.get(volume_id=volume.id).pk,
        "portal_key_pk": SSHKey.objects.create(user=b.pi, name="bobs-key", public_key=PUBKEY).pk,
        "credential_pk": ApplicationCredential.objects.create(
            user=b.pi, allocation=b, keystone_id=f"cred-{tag}", name="bobs-cred").pk,
    }
    yield things
    conn.compute.delete_keypair(keypair.name, ignore_missing=True)
    conn.network.remove_interface_from_router(router, subnet_id=subnet.id)
    conn.close()


def names_of_everything_in(project_id: str) -> set[str]:
    conn = connection_get()
    found = {s.name for s in conn.compute.servers(all_projects=True, project_id=project_id)}
    found |= {v.name for v in conn.block_storage.volumes(all_projects=True, project_id=project_id)}
    found |= {n.name for n in conn.network.networks(project_id=project_id)}
    found |= {g.name for g in conn.network.security_groups(project_id=project_id)} - {"default"}
    found |= {f.id for f in conn.network.ips(project_id=project_id)}
    found |= {i.name for i in conn.image.images(owner=project_id)}
    return found


def test_alices_identity_cannot_see_or_touch_bobs_things_in_the_cloud(two_projects, bobs_things):
    """The first fence is OpenStack's own: the scope A's pages use sees none of B's things."""
    a, b = two_projects
    scope = member_scope(user=a.pi, allocation=a)
    with pytest.raises(NotFound):
        compute.server_get(scope=scope, server_id=bobs_things["server"])
    with pytest.raises(NotFound):
        image.image_get(scope=scope, image_id=bobs_things["image"])
    assert bobs_things["image"] not in {i.id for i in image.image_list(scope=scope)}
    assert bobs_things["network"] not in {n.id for n in network.network_list(scope=scope)}
    assert bobs_things["security_group"] not in {g.id for g in network.security_group_list(scope=scope)}
    assert bobs_things["floating_ip"] not in {f.id for f in network.floating_ip_list(scope=scope)}
    assert compute.keypair_get(scope=scope, name=bobs_things["keypair"]) is None
    assert compute.server_list(scope=scope) == []


def test_every_page_form_and_post_refuses_bobs_ids_and_makes_nothing(client, two_projects, bobs_things,
                                                                     monkeypatch):
    a, b = two_projects
    things = bobs_things
    # tasks would be enqueued on commit; none may be, but keep a session worker out of it either way
    monkeypatch.setattr("portal.services.status_row_enqueue", lambda **kw: pytest.fail(f"enqueued {kw}"))
    client.force_login(a.pi)
    before = {"launches": LaunchRequest.objects.count(), "actions": CloudAction.objects.count(),
              "members": Membership.objects.count()}
    bob_strings = [things["server"], things["volume"], things["snapshot"], things["image"], things["network"],
                   things["security_group"], things["security_group_name"], things["floating_ip"],
                   things["floating_ip_address"], "bob-server", "bob-volume", "Bob's lab", "bob@b.example.org"]

    # Pages: A's own pages show nothing of B's; B's project named in the query string is a 404.
    for name in ("dashboard", "instances:list", "instances:volumes", "instances:launch", "instances:keys",
                 "instances:security_groups", "instances:floating_ips", "instances:volume_create",
                 "allocations:list", "allocations:credentials"):
        body = client.get(reverse(name)).content.decode()
        leaked = [s for s in bob_strings if s in body]
        assert not leaked, f"{name} shows {leaked}"
        if name.startswith("instances:") and name != "instances:keys":
            response = client.get(reverse(name), {"project": b.pk})
            assert response.status_code == 404, f"{name}?project=<B> answered {response.status_code}"
    for url in (reverse("instances:detail", args=[things["instance_pk"]]),
                reverse("instances:console_log", args=[things["instance_pk"]]),
                reverse("instances:console", args=[things["instance_pk"]]),
                reverse("allocations:detail", args=[b.pk]), reverse("allocations:quota", args=[b.pk])):
        assert client.get(url).status_code == 404, url

    # Form choices: the launch and volume forms offer none of B's images, networks, groups or volumes.
    launch_page = client.get(reverse("instances:launch"), {"project": a.pk}).content.decode()
    volume_page = client.get(reverse("instances:volume_create"), {"project": a.pk}).content.decode()
    for value in (things["image"], things["network"], things["security_group_name"], things["volume"]):
        assert value not in launch_page
    for value in (things["image"], things["snapshot"]):
        assert value not in volume_page

    # POSTs that take an id, fed B's ids: a form error or a 404, never a success.
    flavor = connection_get().compute.find_flavor("m3.tiny", ignore_missing=False).id
    featured = connection_get().image.find_image("Featured-Ubuntu24", ignore_missing=False).id
    launch = {"project": a.pk, "name": "sneaky", "image": featured, "flavor": flavor, "count": 1}
    for field, value in (("image", things["image"]), ("network", things["network"]),
                         ("boot_volume", things["volume"]), ("security_groups", things["security_group_name"])):
        response = client.post(f"{reverse('instances:launch')}?project={a.pk}",
                               {**launch, field: value, **({"image": ""} if field == "boot_volume" else {})})
        assert response.status_code == 200 and "Select a valid choice" in response.content.decode(), field
    response = client.post(f"{reverse('instances:launch')}?project={b.pk}", {**launch, "project": b.pk})
    assert response.status_code == 404
    for field in ("image_id", "snapshot_id"):
        key = "image" if field == "image_id" else "snapshot"
        response = client.post(f"{reverse('instances:volume_create')}?project={a.pk}",
                               {"project": a.pk, "name": "sneaky", "size_gb": 1, field: things[key]})
        assert response.status_code == 200 and "Select a valid choice" in response.content.decode(), field
    assert client.post(f"{reverse('instances:volume_create')}?project={b.pk}",
                       {"name": "sneaky", "size_gb": 1}).status_code == 404
    for action in ("stop", "delete", "floating_ip_assign", "image_create", "resize", "lock"):
        assert client.post(reverse("instances:act", args=[things["instance_pk"], action])).status_code == 404
    for action in ("delete", "detach", "extend", "snapshot", "attach", "create"):
        assert client.post(reverse("instances:volume_act", args=[things["volume_pk"], action]),
                           {"size_gb": 5, "server_id": things["server"]}).status_code == 404
    for url, data in ((reverse("instances:security_group_delete", args=[things["security_group"]]), {"project": a.pk}),
                      (reverse("instances:floating_ip_delete", args=[things["floating_ip"]]), {"project": a.pk})):
        response = client.post(url, data, follow=True)
        assert "not in this project" in response.content.decode(), url
        assert client.post(url, {"project": b.pk}).status_code == 404, url
    assert client.post(reverse("instances:key_delete", args=[things["portal_key_pk"]])).status_code == 404
    assert client.post(reverse("allocations:credential_delete", args=[things["credential_pk"]])).status_code == 404
    bob_membership = Membership.objects.get(allocation=b, user=b.pi)
    assert client.post(reverse("allocations:member_remove", args=[b.pk, bob_membership.pk])).status_code == 404
    assert client.post(reverse("allocations:member_add", args=[b.pk]), {"email": a.pi.email,
                                                                         "role": "member"}).status_code == 404

    # Afterwards: B's things are all still there, and nothing A made exists anywhere.
    conn = things["conn"]
    assert conn.compute.get_server(things["server"]).status == "ACTIVE"
    assert conn.block_storage.get_volume(things["volume"]).status == "available"
    assert conn.network.get_security_group(things["security_group"]) is not None
    assert conn.network.get_ip(things["floating_ip"]) is not None
    assert SSHKey.objects.filter(pk=things["portal_key_pk"]).exists()
    assert ApplicationCredential.objects.filter(pk=things["credential_pk"]).exists()
    for project_id in (a.openstack_project_id, b.openstack_project_id, connection_get(
            project_id=a.openstack_project_id).current_project_id):
        assert not any("sneaky" in n for n in names_of_everything_in(project_id))
    assert names_of_everything_in(a.openstack_project_id) == set()
    service_project = connection_get().identity.find_project("portal", domain_id="default")
    assert names_of_everything_in(service_project.id) == set()
    assert {"launches": LaunchRequest.objects.count(), "actions": CloudAction.objects.count(),
            "members": Membership.objects.count()} == before


def test_pending_allocation_has_no_project_and_no_fallback(client, two_projects, django_user_model):
    """A pending allocation's pages act nowhere: no fallback to the portal's own project."""
    from tests.fixtures.allocations import make_allocation

    a, _ = two_projects
    pending = make_allocation(pi=a.pi, status="requested", project_id="", sus=0, title="Pending one")
    client.force_login(a.pi)
    for name in ("instances:volume_create", "instances:launch"):
        response = client.post(f"{reverse(name)}?project={pending.pk}", {"name": "v", "size_gb": 1}, follow=True)
        assert response.status_code in (200, 404)
    assert Volume.objects.count() == 0 and CloudAction.objects.count() == 0 and LaunchRequest.objects.count() == 0
    service_project = connection_get().identity.find_project("portal", domain_id="default")
    assert names_of_everything_in(service_project.id) == set()


def test_a_server_made_with_downloaded_credentials_shows_its_maker(two_projects, tmp_path):
    """The CLI sees the real user_id: a server the person makes with their application credential
    is theirs in the portal too (and charged to them)."""
    import yaml

    a, _ = two_projects
    row, secret = credential_service.credential_create(user=a.pi, allocation=a, name="laptop", expires_in_days=1)
    clouds = tmp_path / "clouds.yaml"
    clouds.write_text(credential_service.clouds_yaml(credential=row, secret=secret))
    cloud_name = next(iter(yaml.safe_load(clouds.read_text())["clouds"]))
    conn = openstack.connection.Connection(
        config=openstack.config.OpenStackConfig(config_files=[str(clouds)]).get_one(cloud=cloud_name))
    server = conn.compute.create_server(
        name="from-my-laptop", flavor_id=conn.compute.find_flavor("m3.tiny", ignore_missing=False).id,
        image_id=conn.image.find_image("Featured-Ubuntu24", ignore_missing=False).id, networks="none")
    conn.compute.wait_for_server(server, status="ACTIVE", wait=120, interval=0.5)
    conn.close()
    project_sync(allocation=a)
    instance = Instance.objects.get(server_id=server.id)
    assert instance.created_by == a.pi and instance.creator_label == a.pi.email
    assert instance.cloud_user_id == KeystoneIdentity.objects.get(user=a.pi).keystone_user_id


def test_flavors_follow_the_allocation_kind_in_nova(devcloud):
    """A CPU allocation's project cannot see or boot a g3 flavor, from the portal or the SDK; a GPU
    allocation's can (Nova enforces it: g3 is private and opened per project)."""
    cpu = provision_directly(pi=UserFactory(), kind="research_cpu", title="CPU lab")
    gpu = provision_directly(pi=UserFactory(), kind="research_gpu", title="GPU lab")
    try:
        cpu_names = {f.name for f in compute.flavor_list(scope=member_scope(user=cpu.pi, allocation=cpu))}
        gpu_names = {f.name for f in compute.flavor_list(scope=member_scope(user=gpu.pi, allocation=gpu))}
        assert "m3.small" in cpu_names and not any(n.startswith(("g3.", "r3.")) for n in cpu_names)
        assert {"g3.small", "g3.xl", "m3.small"} <= gpu_names and not any(n.startswith("r3.") for n in gpu_names)

        g3_id = connection_get().compute.find_flavor("g3.small", ignore_missing=False, is_public=None).id
        featured = connection_get().image.find_image("Featured-Ubuntu24", ignore_missing=False).id
        cli = as_person(cpu.pi, cpu)
        assert cli.compute.find_flavor("g3.small", ignore_missing=True) is None
        with pytest.raises(openstack.exceptions.SDKException):
            cli.compute.create_server(name="gpu-by-cli", flavor_id=g3_id, image_id=featured, networks="none")
        cli.close()
        gpu_cli = as_person(gpu.pi, gpu)
        server = gpu_cli.compute.create_server(name="gpu-ok", flavor_id=g3_id, image_id=featured, networks="none")
        assert gpu_cli.compute.wait_for_server(server, status="ACTIVE", wait=120, interval=0.5).status == "ACTIVE"
        gpu_cli.close()
    finally:
        remove_directly(cpu)
        remove_directly(gpu)


def test_isolate_projects_takes_the_admin_role_out_of_projects_an_older_portal_made(devcloud):
    """An older portal granted its admin user admin (and member) in every allocation project and gave
    every flavor to everyone; the command brings such a project under the rule."""
    from django.core.management import call_command

    allocation = provision_directly(pi=UserFactory(), kind="research_cpu", title="Old lab")
    admin = connection_get()
    project_id = allocation.openstack_project_id
    admin_user = admin.current_user_id
    for role in ("admin", "member"):
        admin.identity.assign_project_role_to_user(project_id, admin_user, admin.identity.find_role(role))
    g3 = admin.compute.find_flavor("g3.small", ignore_missing=False, is_public=None)
    admin.compute.flavor_add_tenant_access(g3, project_id)
    try:
        call_command("isolate_projects")

        def roles(user_id):
            return {a.role["name"] for a in admin.identity.role_assignments(
                scope_project_id=project_id, user_id=user_id, include_names=True)}

        assert roles(admin_user) == set()
        service_user = connection_get(project_id=project_id).current_user_id
        assert "member" in roles(service_user) and "admin" not in roles(service_user)
        assert "member" in roles(KeystoneIdentity.objects.get(user=allocation.pi).keystone_user_id)
        assert project_id not in {a["tenant_id"] for a in admin.compute.get_flavor_access(g3)}
    finally:
        remove_directly(allocation)


def test_a_persons_token_is_signed_for_once_and_shared_until_near_expiry(two_projects):
    """Keystone signs a person in once per project; other processes (a web worker, a Celery worker)
    reuse that token from the cache instead of signing in again."""
    from portal.cloud.connection import connection_cache_clear, connection_for

    a, b = two_projects
    scope = member_scope(user=a.pi, allocation=a)
    first = connection_for(scope).session.get_token()
    connection_cache_clear()  # what another process starts with
    assert connection_for(scope).session.get_token() == first
    assert connection_for(member_scope(user=b.pi, allocation=b)).session.get_token() != first


def test_a_person_whose_email_names_an_existing_keystone_user_gets_their_own(devcloud):
    """The portal never resets the password of a Keystone user it did not make."""
    from allocations import provisioning

    admin = connection_get()
    person = UserFactory()
    password = uuid.uuid4().hex
    theirs = admin.identity.create_user(name=person.email, password=password, domain_id="default")
    try:
        identity = provisioning.keystone_identity_ensure(user=person)
        assert identity.keystone_user_id != theirs.id and identity.keystone_username != person.email
        # the existing user still signs in with its own password
        project = admin.identity.create_project(name=f"own-{uuid.uuid4().hex[:8]}", domain_id="default")
        admin.identity.assign_project_role_to_user(project, theirs, admin.identity.find_role("member"))
        conn = connection_as(username=person.email, password=password, project_id=project.id)
        assert conn.current_user_id == theirs.id
        conn.close()
        admin.identity.delete_project(project)
    finally:
        admin.identity.delete_user(theirs, ignore_missing=True)
        for ks in KeystoneIdentity.objects.filter(user=person):
            admin.identity.delete_user(ks.keystone_user_id, ignore_missing=True)
