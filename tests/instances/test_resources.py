from django.urls import reverse

from instances.models import CloudAction, SSHKey, Volume
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
