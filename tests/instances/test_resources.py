from django.urls import reverse

from instances.models import CloudAction, Instance, SSHKey, Volume
from instances.services import project_sync, volumes_upsert
from portal.cloud import block_storage

ED25519 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl me@laptop"


def vol(vid, status="available", attachments=()):
    return block_storage.Volume(id=vid, name=f"vol-{vid}", size_gb=10, status=status, is_bootable=False,
                                attachments=tuple(attachments), metadata={}, snapshot_id="", created_at=None,
                                updated_at=None)


def test_dashboard_counts_instances_volumes_and_what_is_building(user_client, cloud, allocation, monkeypatch):
    monkeypatch.setattr("instances.selectors.project_quotas", lambda **kw: {"instances": 10, "volumes": 5,
                                                                                  "floating_ips": 2})
    cloud.add("a")
    cloud.add("b", status="BUILD")
    project_sync(allocation=allocation)
    volumes_upsert(allocation=allocation, volumes=[vol("v1")])
    page = user_client.get(reverse("dashboard")).content.decode()
    assert "2 / 10" in page and "1 / 5" in page and "1 changing" in page


def test_volume_list_shows_attachment_and_offers_what_applies(user_client, cloud, allocation):
    s = cloud.add("host")
    project_sync(allocation=allocation)
    volumes_upsert(allocation=allocation, volumes=[
        vol("v1"), vol("v2", "in-use", [block_storage.Attachment(s.id, "/dev/vdb")])])
    page = user_client.get(reverse("instances:volumes")).content.decode()
    assert page.count('data-testid="volume-row"') == 2
    v2_row = page[page.index('data-volume-id="v2"'):]
    assert ">host</a>" in v2_row and "Detach" in v2_row.split("</tr>")[0]


def test_volume_actions_are_refused_in_the_wrong_state_and_404_for_others(
        user_client, cloud, allocation, other_allocation, django_capture_on_commit_callbacks):
    volumes_upsert(allocation=allocation, volumes=[vol("v1", "in-use")])
    volumes_upsert(allocation=other_allocation, volumes=[vol("v9")])
    mine, theirs = Volume.objects.get(volume_id="v1"), Volume.objects.get(volume_id="v9")
    response = user_client.post(reverse("instances:volume_act", args=[mine.pk, "delete"]), follow=True)
    assert "Delete is not possible while the volume is in-use" in response.content.decode()
    assert user_client.post(reverse("instances:volume_act", args=[theirs.pk, "delete"])).status_code == 404
    with django_capture_on_commit_callbacks() as callbacks:
        user_client.post(reverse("instances:volume_act", args=[mine.pk, "extend"]), {"size_gb": 20})
    assert len(callbacks) == 1 and CloudAction.objects.get().params == {"size_gb": 20}


def test_keys_page_adds_a_valid_key_and_refuses_garbage(user_client, user):
    user_client.post(reverse("instances:keys"), {"name": "laptop", "public_key": ED25519})
    key = SSHKey.objects.get(user=user)
    assert key.fingerprint.startswith("SHA256:")
    page = user_client.post(reverse("instances:keys"), {"name": "bad", "public_key": "hello"}).content.decode()
    assert "not an SSH public key" in page and SSHKey.objects.count() == 1


def test_a_security_group_or_public_ip_of_another_project_cannot_be_deleted(user_client, allocation, monkeypatch):
    from portal.cloud import network
    deleted = []
    monkeypatch.setattr(network, "security_group_list", lambda **kw: [network.SecurityGroup("sg-mine", "web", "", ())])
    monkeypatch.setattr(network, "security_group_delete", lambda **kw: deleted.append(kw["group_id"]))
    monkeypatch.setattr(network, "floating_ip_list", lambda **kw: [])
    monkeypatch.setattr(network, "floating_ip_delete", lambda **kw: deleted.append(kw["floating_ip_id"]))
    page = user_client.post(reverse("instances:security_group_delete", args=["sg-elsewhere"]),
                            {"project": allocation.pk}, follow=True).content.decode()
    assert "not in this project" in page
    user_client.post(reverse("instances:floating_ip_delete", args=["fip-elsewhere"]), {"project": allocation.pk})
    user_client.post(reverse("instances:security_group_delete", args=["sg-mine"]), {"project": allocation.pk})
    assert deleted == ["sg-mine"]


def test_an_action_that_does_not_apply_to_a_volume_is_refused_before_any_row(user_client, cloud, allocation):
    # "create" on an existing volume used to leave a CloudAction running forever and block the volume
    volumes_upsert(allocation=allocation, volumes=[vol("v1")])
    volume = Volume.objects.get(volume_id="v1")
    for action in ("create", "explode"):
        page = user_client.post(reverse("instances:volume_act", args=[volume.pk, action]), follow=True)
        assert "There is no such action for a volume" in page.content.decode()
    assert not CloudAction.objects.exists()


def test_a_disabled_allocation_refuses_new_volumes_with_words(user_client, cloud, allocation):
    from django.utils import timezone

    allocation.status, allocation.disabled_at = "exhausted", timezone.now()
    allocation.save()
    page = user_client.get(reverse("instances:volume_create"), {"project": allocation.pk}, follow=True)
    assert "nothing new can be made in it" in page.content.decode()
    assert not CloudAction.objects.exists()


# --- Issue 14, part C: the volumes page tells what failed; network pages --------------------------

import re  # noqa: E402

import pytest  # noqa: E402
from openstack import exceptions as sdk_exc  # noqa: E402

from instances.services import volume_action_run, volume_create_request  # noqa: E402
from portal.cloud import errors, network  # noqa: E402

CINDER_413 = ("VolumeSizeExceedsAvailableQuota: Requested volume or snapshot exceeds allowed gigabytes quota. "
              "Requested 5000G, quota is 1000G and 0G has been consumed.")


def cinder_refuses(detail=CINDER_413, status=413):
    def volume_create(**kwargs):
        raise errors.translate(sdk_exc.HttpException(message=f"{status}: Client Error", details=detail,
                                                     http_status=status))
    return volume_create


def volumes_page(client, **params) -> str:
    return client.get(reverse("instances:volumes"), params).content.decode()


def failed_create(user, allocation, monkeypatch, name="data-1", size_gb=5000):
    # given Cinder refuses the create after the form accepted it (e.g. the quota was lowered meanwhile)
    monkeypatch.setattr(block_storage, "volume_create", cinder_refuses())
    row = volume_create_request(user=user, allocation=allocation, name=name, size_gb=size_gb)
    return volume_action_run(action_id=row.pk)


def test_a_volume_create_cinder_refuses_is_a_row_with_the_quota_in_numbers_until_dismissed(
        user_client, user, cloud, allocation, monkeypatch):
    row = failed_create(user, allocation, monkeypatch)
    assert row.state == "failed"
    page = volumes_page(user_client)
    failed = page[page.index('data-testid="volume-failed-row"'):].split("</tr>")[0]
    assert "Creating volume data-1 failed." in failed
    assert ("The project&#x27;s volume storage quota (1,000 GB) would be exceeded by 4,000 GB: "
            "5,000 GB asked for, 0 GB already in use.") in failed
    assert "5000 GB" in failed and "Dismiss" in failed
    # when they dismiss it, it leaves the page (the history keeps the row)
    response = user_client.post(reverse("instances:volume_action_dismiss", args=[row.pk]),
                                {"next": reverse("instances:volumes")})
    assert response.status_code == 302 and response["Location"] == reverse("instances:volumes")
    assert 'data-testid="volume-failed-row"' not in volumes_page(user_client)
    assert CloudAction.objects.get(pk=row.pk).dismissed_at is not None


def outsider_client(other_allocation):
    from django.test import Client

    client = Client()
    client.force_login(other_allocation.pi)
    return client


def test_only_a_member_may_dismiss_and_only_a_failed_volume_action(
        user_client, user, cloud, allocation, other_allocation, monkeypatch):
    row = failed_create(user, allocation, monkeypatch)
    client = outsider_client(other_allocation)
    assert client.post(reverse("instances:volume_action_dismiss", args=[row.pk])).status_code == 404
    assert CloudAction.objects.get(pk=row.pk).dismissed_at is None
    running = volume_create_request(user=user, allocation=allocation, name="later", size_gb=1)
    page = user_client.post(reverse("instances:volume_action_dismiss", args=[running.pk]), follow=True)
    assert "Only a failed volume action can be dismissed" in page.content.decode()
    assert CloudAction.objects.get(pk=running.pk).dismissed_at is None


def test_a_create_still_running_shows_as_a_row_and_the_list_polls(user_client, user, cloud, allocation):
    volume_create_request(user=user, allocation=allocation, name="coming", size_gb=3)
    page = volumes_page(user_client)
    creating = page[page.index('data-testid="volume-creating-row"'):].split("</tr>")[0]
    assert "coming" in creating and "3 GB" in creating and "creating" in creating
    assert 'hx-trigger="every 2s"' in page


def test_a_failed_action_shows_on_its_volumes_row_until_a_newer_one(user_client, user, cloud, allocation):
    volumes_upsert(allocation=allocation, volumes=[vol("v1")])
    CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_type="volume", target_id="v1",
                               target_name="vol-v1", action="extend", state="failed", requested_by=user,
                               error="The storage service could not extend the volume; its data is unchanged.")
    row = volumes_page(user_client).split('data-volume-id="v1"')[1].split("</tr>")[0]
    assert "Extending failed." in row and "could not extend the volume" in row
    CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_type="volume", target_id="v1",
                               target_name="vol-v1", action="snapshot", state="succeeded", requested_by=user)
    assert "Extending failed" not in volumes_page(user_client)


def test_an_action_running_on_a_volume_shows_on_its_row_and_the_page_polls_until_it_ends(
        user_client, user, cloud, allocation):
    volumes_upsert(allocation=allocation, volumes=[vol("v1")])
    assert 'hx-trigger="every 2s"' not in volumes_page(user_client)
    action = CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_type="volume",
                                        target_id="v1", target_name="vol-v1", action="attach", state="running",
                                        requested_by=user)
    page = volumes_page(user_client)
    assert "Attaching…" in page.split('data-volume-id="v1"')[1].split("</tr>")[0]
    assert 'hx-trigger="every 2s"' in page
    CloudAction.objects.filter(pk=action.pk).update(state="succeeded")
    assert 'hx-trigger="every 2s"' not in volumes_page(user_client)


def test_attach_offers_no_preselected_instance_and_refuses_none_at_the_form(user_client, cloud, allocation):
    cloud.add("alpha")
    cloud.add("beta")
    cloud.add("shelved", status="SHELVED_OFFLOADED")  # Nova would refuse it: not offered
    project_sync(allocation=allocation)
    volumes_upsert(allocation=allocation, volumes=[vol("v1")])
    row = volumes_page(user_client).split('data-volume-id="v1"')[1].split("</tr>")[0]
    select = re.search(r'<select name="server_id"[^>]*>(.*?)</select>', row, re.S)
    assert "required" in select.group(0)
    options = re.findall(r'<option value="([^"]*)"[^>]*>([^<]*)</option>', select.group(1))
    assert options[0] == ("", "Choose an instance") and [o[1] for o in options[1:]] == ["alpha", "beta"]
    volume = Volume.objects.get(volume_id="v1")
    page = user_client.post(reverse("instances:volume_act", args=[volume.pk, "attach"]), {"server_id": ""},
                            follow=True).content.decode()
    assert "Choose the instance to attach the volume to." in page
    assert not CloudAction.objects.exists()


def test_an_attached_volume_shows_its_device_a_mount_hint_and_asks_before_detach_and_delete(
        user_client, cloud, allocation):
    s = cloud.add("host")
    project_sync(allocation=allocation)
    volumes_upsert(allocation=allocation, volumes=[
        block_storage.Volume(id="v2", name="data 1", size_gb=10, status="in-use", is_bootable=False,
                             attachments=(block_storage.Attachment(s.id, "/dev/vdb"),), metadata={}, snapshot_id="",
                             created_at=None, updated_at=None), vol("v3")])
    page = volumes_page(user_client)
    row = page.split('data-volume-id="v2"')[1].split("</tr>")[0]
    assert '<code data-testid="volume-device">/dev/vdb</code>' in row
    assert "sudo mkfs.ext4 /dev/vdb" in row
    assert "sudo mkdir -p /media/volume/data-1 &amp;&amp; sudo mount /dev/vdb /media/volume/data-1" in row
    assert re.search(r'data-confirm="Detach data 1 from host\?[^"]*umount', row)
    assert re.search(r'<label[^>]*for="extend-\d+">New size \(GB\), now 10</label>', row)
    free = page.split('data-volume-id="v3"')[1].split("</tr>")[0]
    assert 'data-confirm="Delete the volume vol-v3 (10 GB)? Its data cannot be recovered."' in free


def test_the_volumes_page_makes_the_same_queries_for_one_volume_or_many(
        user_client, user, cloud, allocation, django_assert_max_num_queries, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def count():
        user_client.get(reverse("instances:volumes"))  # the regions the page reads are cached a few seconds
        with CaptureQueriesContext(connection) as ctx:
            assert user_client.get(reverse("instances:volumes")).status_code == 200
        return len(ctx.captured_queries)

    monkeypatch.setattr(block_storage, "volume_create", cinder_refuses())
    attached = vol("v1", "in-use", [block_storage.Attachment("srv-x", "/dev/vdb")])
    volumes_upsert(allocation=allocation, volumes=[attached])
    volume_action_run(action_id=volume_create_request(user=user, allocation=allocation, name="f1", size_gb=5).pk)
    few = count()
    volumes_upsert(allocation=allocation, volumes=[vol(f"w{i}") for i in range(6)])
    for i in range(4):
        volume_action_run(action_id=volume_create_request(user=user, allocation=allocation, name=f"g{i}", size_gb=5).pk)
    assert count() == few


@pytest.mark.parametrize("detail,status,words", [
    ("VolumeLimitExceeded: Maximum number of volumes allowed (10) exceeded for quota 'volumes'.", 413,
     "The project may have at most 10 volumes, and has that many already."),
    ("Quota exceeded for cores, ram: Requested 64, 65536, but already used 20, 4096 of 64, 131072 cores, ram", 403,
     "The project's quota would be exceeded: 64 cores allowed, 20 in use, 64 more asked for (20 over); "
     "128 GB of RAM allowed, 4 GB in use, 64 GB more asked for."),
    ("Quota exceeded for resources: ['floatingip'].", 409, "The project has used all of its quota of public IPs."),
])
def test_quota_refusals_of_each_service_read_in_numbers(detail, status, words):
    exc = errors.translate(sdk_exc.HttpException(message="refused", details=detail, http_status=status))
    assert isinstance(exc, errors.QuotaExceeded) and str(exc) == words


# --- Keys: generated key pairs ------------------------------------------------------------------


def test_a_generated_key_keeps_only_the_public_half_and_its_private_key_downloads_once(
        user_client, user, other_allocation):
    from cryptography.hazmat.primitives import serialization

    response = user_client.post(reverse("instances:keys"), {"generate-name": "laptop-2"})
    assert response.status_code == 200 and response["Cache-Control"] == "no-store"
    link = re.search(r'href="(/keys/download/[^"]+)"', response.content.decode()).group(1)
    key = SSHKey.objects.get(user=user, name="laptop-2")
    assert key.public_key.startswith("ssh-ed25519 ") and "PRIVATE" not in key.public_key
    # someone else with the link gets nothing, and does not use it up
    assert outsider_client(other_allocation).get(link).status_code == 404
    download = user_client.get(link)
    assert download.status_code == 200 and download["Cache-Control"] == "no-store"
    assert download["Content-Disposition"] == 'attachment; filename="laptop-2.pem"'
    private = serialization.load_ssh_private_key(download.content, password=None)
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    assert key.public_key.split()[:2] == public.decode().split()[:2]
    assert user_client.get(link).status_code == 404  # once only


def test_generating_refuses_a_name_in_use_at_the_field_and_keeps_the_upload_form(user_client, user):
    user_client.post(reverse("instances:keys"), {"name": "laptop", "public_key": ED25519})
    page = user_client.post(reverse("instances:keys"), {"generate-name": "laptop"}).content.decode()
    assert "You already have a key named “laptop”." in page and "/keys/download/" not in page
    assert SSHKey.objects.filter(user=user).count() == 1


# --- Security groups: rules in words, add and remove, unique names ------------------------------


RULES = (network.SecurityGroupRule("r-ssh", "ingress", "tcp", 22, 22, "0.0.0.0/0"),
         network.SecurityGroupRule("r-web", "ingress", "tcp", 8000, 8080, "10.0.0.0/8"),
         network.SecurityGroupRule("r-ping", "ingress", "icmp", None, None, "0.0.0.0/0"),
         network.SecurityGroupRule("r-peer", "ingress", "any", None, None, "", "IPv4", "sg-default"),
         network.SecurityGroupRule("r-peer6", "ingress", "any", None, None, "", "IPv6", "sg-default"),
         network.SecurityGroupRule("r-out", "egress", "any", None, None, ""))


@pytest.fixture
def neutron(cloud, monkeypatch):
    """The project's groups as Neutron holds them, and what the pages asked it to do."""
    state = {"groups": [network.SecurityGroup("sg-default", "default", "", ()),
                        network.SecurityGroup("sg-web", "Web", "for the web server", RULES)], "calls": []}
    monkeypatch.setattr(network, "security_group_list", lambda *, scope: state["groups"])

    def rule_create(**kw):
        state["calls"].append(("rule_create", {k: v for k, v in kw.items() if k != "scope"}))
        if kw.get("port") == 22 and kw["group_id"] == "sg-web":
            raise errors.Conflict(detail="Security group rule already exists. Rule id is r-ssh.")
        return network.SecurityGroupRule("r-new", "ingress", kw["protocol"], kw.get("port"),
                                         kw.get("port_max") or kw.get("port"), kw["remote_ip_prefix"])
    monkeypatch.setattr(network, "security_group_rule_create", rule_create)
    monkeypatch.setattr(network, "security_group_rule_delete",
                        lambda *, scope, rule_id: state["calls"].append(("rule_delete", rule_id)))
    monkeypatch.setattr(network, "security_group_create", lambda **kw: state["calls"].append(
        ("group_create", kw["name"])) or network.SecurityGroup("sg-x", kw["name"], "", ()))
    return state


def test_rules_read_in_words(user_client, allocation, neutron):
    page = user_client.get(reverse("instances:security_groups")).content.decode()
    web = page.split('data-group-name="Web"')[1].split("</section>")[0]
    words = [re.sub(r"\s+", " ", w) for w in re.findall(r'data-testid="rule"[^>]*>\s*<span>([^<]*)</span>', web)]
    assert words == ["SSH (22/tcp) from anywhere", "TCP ports 8000–8080 from 10.0.0.0/8",
                     "Ping and other ICMP from anywhere", "All traffic from instances in the group “default”",
                     "All traffic from instances in the group “default” over IPv6"]
    assert "All outgoing traffic is allowed." in web
    assert 'data-confirm="Remove “SSH (22/tcp) from anywhere” from Web?' in web.replace("&ldquo;", "“").replace(
        "&rdquo;", "”")


def test_a_rule_is_added_from_a_preset_or_a_port_range(user_client, allocation, neutron):
    add = reverse("instances:security_group_rule_add", args=["sg-default"])
    response = user_client.post(add, {"project": allocation.pk, "preset": "https", "cidr": "0.0.0.0/0"}, follow=True)
    assert "Rule added: HTTPS (443/tcp) from anywhere." in response.content.decode()
    user_client.post(add, {"project": allocation.pk, "protocol": "udp", "ports": "60000-61000",
                           "cidr": "2001:db8::/32"})
    assert [c[1] for c in neutron["calls"]] == [
        {"group_id": "sg-default", "protocol": "tcp", "port": 443, "port_max": 443, "remote_ip_prefix": "0.0.0.0/0"},
        {"group_id": "sg-default", "protocol": "udp", "port": 60000, "port_max": 61000,
         "remote_ip_prefix": "2001:db8::/32"}]


@pytest.mark.parametrize("data,field,message", [
    ({"protocol": "tcp", "ports": "", "cidr": "0.0.0.0/0"}, "ports", "Give a port (e.g. 22) or a range"),
    ({"protocol": "tcp", "ports": "99999", "cidr": "0.0.0.0/0"}, "ports", "Ports run from 1 to 65535."),
    ({"protocol": "tcp", "ports": "90-80", "cidr": "0.0.0.0/0"}, "ports", "The range must go up"),
    ({"protocol": "tcp", "ports": "22", "cidr": "10.0.0.5/8"}, "cidr", "did you mean 10.0.0.0/8"),
    ({"protocol": "tcp", "ports": "22", "cidr": "my office"}, "cidr", "is not a network"),
])
def test_a_bad_rule_is_refused_at_its_field_with_the_input_kept(user_client, allocation, neutron, data, field,
                                                                 message):
    response = user_client.post(reverse("instances:security_group_rule_add", args=["sg-web"]),
                                {"project": allocation.pk, **data})
    page = response.content.decode()
    section = page.split('data-group-name="Web"')[1].split("</section>")[0]
    assert "<details open>" in section
    field_html = re.search(rf'<input type="text" name="{field}" id="id_sg-web_{field}" value="([^"]*)" '
                           rf'class="[^"]*is-invalid', section)
    assert field_html and field_html.group(1) == data[field]
    assert message in section.replace("&#x27;", "'")
    assert neutron["calls"] == []


def test_switching_project_on_a_refused_rules_page_leads_back_to_the_groups(user_client, allocation, neutron):
    # the page re-rendered at the rule's address after a refusal; its project picker GETs that address
    response = user_client.get(reverse("instances:security_group_rule_add", args=["sg-web"]),
                               {"project": allocation.pk})
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('instances:security_groups')}?project={allocation.pk}"
    assert neutron["calls"] == []


def test_a_rule_the_group_already_has_is_refused_in_words(user_client, allocation, neutron):
    page = user_client.post(reverse("instances:security_group_rule_add", args=["sg-web"]),
                            {"project": allocation.pk, "preset": "ssh", "cidr": "0.0.0.0/0"}).content.decode()
    assert "The group “Web” already has this rule." in page


def test_a_rule_is_removed_only_from_a_group_of_the_project(user_client, allocation, neutron):
    page = user_client.post(reverse("instances:security_group_rule_delete", args=["sg-web", "r-web"]),
                            {"project": allocation.pk}, follow=True).content.decode()
    assert "Rule removed: TCP ports 8000–8080 from 10.0.0.0/8." in page
    page = user_client.post(reverse("instances:security_group_rule_delete", args=["sg-default", "r-web"]),
                            {"project": allocation.pk}, follow=True).content.decode()
    assert "That rule is not in this security group." in page
    user_client.post(reverse("instances:security_group_rule_delete", args=["sg-elsewhere", "r-x"]),
                     {"project": allocation.pk})
    assert neutron["calls"] == [("rule_delete", "r-web")]


@pytest.mark.parametrize("name", ["web", "DEFAULT"])
def test_a_group_name_in_use_is_refused_at_the_field_whatever_its_case(user_client, allocation, neutron, name):
    page = user_client.post(reverse("instances:security_groups"), {"project": allocation.pk, "name": name,
                                                                   "description": "mine"}).content.decode()
    assert f"The project already has a security group named “{name}”; pick another name." in page
    assert f'value="{name}"' in page and 'value="mine"' in page
    assert neutron["calls"] == []
    user_client.post(reverse("instances:security_groups"), {"project": allocation.pk, "name": "web-2"})
    assert neutron["calls"] == [("group_create", "web-2")]


# --- Public IPs: the instance each points to ----------------------------------------------------


def test_a_public_ip_shows_the_instance_it_points_to_not_its_private_address(
        user_client, cloud, allocation, monkeypatch):
    a = cloud.add("web-server")
    b = cloud.add("worker")
    project_sync(allocation=allocation)
    a_fixed = cloud.servers[a.id].addresses[0].addr
    b_fixed = cloud.servers[b.id].addresses[0].addr
    ips = [network.FloatingIP("fip-1", "203.0.113.7", "ACTIVE", "port-a", a_fixed, "net-pub"),
           network.FloatingIP("fip-2", "203.0.113.8", "ACTIVE", "port-b", b_fixed, "net-pub"),
           network.FloatingIP("fip-3", "203.0.113.9", "DOWN", "", "", "net-pub")]
    monkeypatch.setattr(network, "floating_ip_list", lambda *, scope: ips)
    page = user_client.get(reverse("instances:floating_ips")).content.decode()
    targets = re.findall(r'data-address="([^"]+)".*?data-testid="fip-target">(.*?)</td>', page, re.S)
    a_pk = Instance.objects.get(server_id=a.id).pk
    assert targets[0] == ("203.0.113.7", f'<a href="/instances/{a_pk}/">web-server</a>')
    assert ">worker</a>" in targets[1][1] and "nothing (free)" in targets[2][1]
    assert a_fixed not in page and b_fixed not in page
    assert 'data-confirm="Release 203.0.113.7? web-server will no longer be reachable at it.' in page


class FakeCinder:
    """Cinder at the gateway: volumes made become available at the next look."""

    def __init__(self):
        self.volumes: dict[str, block_storage.Volume] = {}
        self.deleted: list[str] = []

    def volume_create(self, *, scope, name, size_gb, snapshot_id="", image_id="", metadata=None):
        vol = block_storage.Volume(f"vol-{len(self.volumes) + 1}", name, size_gb, "creating", False, (),
                                   dict(metadata or {}), snapshot_id, None, None)
        self.volumes[vol.id] = vol
        return vol

    def _settled(self, vol):
        from dataclasses import replace
        if vol.status == "creating":
            self.volumes[vol.id] = vol = replace(vol, status="available")
        return vol

    def volume_list(self, *, scope):
        return [self._settled(v) for v in list(self.volumes.values())]

    def volume_get(self, *, scope, volume_id):
        if volume_id not in self.volumes:
            raise errors.NotFound("No such volume.")
        return self._settled(self.volumes[volume_id])

    def volume_delete(self, *, scope, volume_id):
        self.deleted.append(volume_id)
        self.volumes.pop(volume_id, None)


def test_a_volume_create_that_timed_out_but_ran_in_cinder_leaves_one_volume(cloud, user, allocation, monkeypatch):
    """Cinder made the volume of a create that timed out only after the retry had looked and made
    another: the row ends with one volume, its own; the second is deleted, not left holding quota."""
    from instances.models import CloudAction

    cinder, late = FakeCinder(), []
    for name in ("volume_list", "volume_get", "volume_delete"):
        monkeypatch.setattr(block_storage, name, getattr(cinder, name))

    def create_times_out_once(**kwargs):
        if not late:
            late.append(kwargs)
            raise errors.CloudUnavailable("Block Storage did not answer in time.")
        made = cinder.volume_create(**kwargs)
        cinder.volume_create(**late[0])  # the create that timed out lands after the retry's
        return made

    monkeypatch.setattr(block_storage, "volume_create", create_times_out_once)
    row = volume_create_request(user=user, allocation=allocation, name="data", size_gb=5)
    with pytest.raises(errors.CloudUnavailable):
        volume_action_run(action_id=row.pk)
    CloudAction.objects.filter(pk=row.pk).update(attempts=2)  # the task's retry
    for _ in range(3):
        row = volume_action_run(action_id=row.pk)
        if row.is_final:
            break
    assert row.state == "succeeded", row.error
    assert list(cinder.volumes) == [row.target_id] and cinder.deleted == ["vol-2"]
