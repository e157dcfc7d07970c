from dataclasses import replace

import pytest
from django.urls import reverse
from django.utils import timezone

from instances.models import CloudAction, Instance, LaunchRequest, Volume
from instances.services import action_run, instance_act, project_sync
from portal.cloud import compute, image, network
from tests.instances.conftest import FLAVORS, IMAGES


def test_list_shows_servers_made_outside_the_portal_with_their_creator(user_client, cloud, allocation, user):
    cloud.add("mine", user_id=f"ks-{user.pk}")
    cloud.add("terraformed")
    project_sync(allocation=allocation)
    page = user_client.get(reverse("instances:list")).content.decode()
    assert "mine" in page and user.email in page
    assert "terraformed" in page and "outside the portal" in page


def test_list_filters_mine_searches_and_sorts(user_client, cloud, allocation, user):
    cloud.add("alpha", user_id=f"ks-{user.pk}")
    cloud.add("beta")
    project_sync(allocation=allocation)
    mine = user_client.get(reverse("instances:list"), {"mine": "1"}).content.decode()
    assert "alpha" in mine and "beta" not in mine
    found = user_client.get(reverse("instances:list"), {"q": "bet"}).content.decode()
    assert "beta" in found and "alpha" not in found
    desc = user_client.get(reverse("instances:list"), {"sort": "-name"}).content.decode()
    assert desc.index("beta") < desc.index("alpha")


def test_gpu_share_is_shown(user_client, cloud, allocation):
    cloud.add("gpu-box", flavor=FLAVORS[3])
    project_sync(allocation=allocation)
    assert "1/5 of an A100" in user_client.get(reverse("instances:list")).content.decode()


def test_rows_poll_while_a_server_builds_and_stop_when_settled(user_client, cloud, allocation, monkeypatch):
    monkeypatch.setattr("instances.tasks.sync_soon", lambda ids: None)
    s = cloud.add("growing", status="BUILD")
    project_sync(allocation=allocation)
    rows = user_client.get(reverse("instances:list"), HTTP_HX_REQUEST="true").content.decode()
    assert 'hx-trigger="every 2s"' in rows and "<html" not in rows
    cloud.set(s.id, status="ACTIVE")
    project_sync(allocation=allocation)
    rows = user_client.get(reverse("instances:list"), HTTP_HX_REQUEST="true").content.decode()
    assert "every 2s" not in rows and "active" in rows


@pytest.mark.parametrize("n", [3, 60])
def test_list_query_and_cloud_call_counts_do_not_grow_with_servers(n, user_client, cloud, allocation,
                                                                  django_assert_max_num_queries):
    for i in range(n):
        cloud.add(f"s{i:03d}", flavor=FLAVORS[i % len(FLAVORS)])
    project_sync(allocation=allocation)
    cloud.calls.clear()
    with django_assert_max_num_queries(9):  # session, user, allocations, count, the page: the same for 3 and 60
        response = user_client.get(reverse("instances:list"))
    assert response.content.decode().count('data-testid="instance-row"') == min(n, 50)  # a page
    assert sum(cloud.calls.values()) == 0  # pages read the mirror, never the cloud


def test_non_member_gets_404_on_every_instance_url(client, cloud, other_allocation, user):
    s = cloud.add("theirs", project_id="proj-2")
    project_sync(allocation=other_allocation)
    pk = Instance.objects.get(server_id=s.id).pk
    client.force_login(user)
    assert "theirs" not in client.get(reverse("instances:list")).content.decode()
    for url in [reverse("instances:detail", args=[pk]), reverse("instances:console_log", args=[pk]),
                reverse("instances:console", args=[pk]),
                f"{reverse('instances:list')}?project={other_allocation.pk}",
                f"{reverse('instances:launch')}?project={other_allocation.pk}"]:
        assert client.get(url).status_code == 404, url
    assert client.post(reverse("instances:act", args=[pk, "stop"])).status_code == 404
    assert not CloudAction.objects.exists()


def test_detail_offers_only_actions_that_apply(user_client, cloud, allocation):
    cloud.add("cpu-box")
    cloud.add("gpu-box", flavor=FLAVORS[3])
    cloud.add("whole-gpu", flavor=FLAVORS[4])
    cloud.add("stopped", status="SHUTOFF")
    project_sync(allocation=allocation)
    pages = {i.name: user_client.get(reverse("instances:detail", args=[i.pk])).content.decode()
             for i in Instance.objects.all()}
    assert ">Suspend<" in pages["cpu-box"] and ">Stop<" in pages["cpu-box"] and ">Start<" not in pages["cpu-box"]
    assert ">Suspend<" not in pages["gpu-box"] and ">Resize<" in pages["gpu-box"]
    assert ">Resize<" not in pages["whole-gpu"]
    assert ">Start<" in pages["stopped"] and ">Stop<" not in pages["stopped"]
    assert "data-confirm=" in pages["cpu-box"]  # delete asks first


def test_an_action_is_recorded_queued_and_a_second_one_is_refused(user_client, cloud, allocation,
                                                                 django_capture_on_commit_callbacks):
    s = cloud.add("box")
    project_sync(allocation=allocation)
    pk = Instance.objects.get(server_id=s.id).pk
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        user_client.post(reverse("instances:act", args=[pk, "stop"]))
        response = user_client.post(reverse("instances:act", args=[pk, "reboot_soft"]), follow=True)
    assert len(callbacks) == 1
    assert "Another action on this instance is still running" in response.content.decode()
    row = CloudAction.objects.get()
    assert (row.action, row.state, row.requested_by_id) == ("stop", "queued", allocation.pi_id)


def test_action_run_changes_state_and_refreshes_the_mirror(cloud, allocation, user):
    s = cloud.add("box")
    project_sync(allocation=allocation)
    row = instance_act(user=user, instance=Instance.objects.get(server_id=s.id), action="stop")
    row = action_run(action_id=row.pk)
    assert row.state == "succeeded"
    assert Instance.objects.get(server_id=s.id).status == "SHUTOFF"


def test_a_resize_waits_for_confirmation_with_the_new_flavor_and_a_revert_restores_the_old(cloud, allocation, user):
    s = cloud.add("box")
    project_sync(allocation=allocation)
    row = instance_act(user=user, instance=Instance.objects.get(server_id=s.id), action="resize",
                       params={"flavor_id": "f-m3-quad"})
    assert action_run(action_id=row.pk).state == "succeeded"
    instance = Instance.objects.get(server_id=s.id)
    assert (instance.status, instance.flavor_name) == ("VERIFY_RESIZE", "m3.quad")

    row = action_run(action_id=instance_act(user=user, instance=instance, action="resize_revert").pk)
    assert row.state == "succeeded"
    instance = Instance.objects.get(server_id=s.id)
    assert (instance.status, instance.flavor_name) == ("ACTIVE", "m3.small")


def test_a_resize_nova_could_not_place_fails_with_words_and_keeps_the_flavor(cloud, allocation, user, monkeypatch):
    s = cloud.add("box")
    cloud.clock = timezone.now()
    cloud.resize_fails = True  # Nova finds no host for the new flavor
    project_sync(allocation=allocation)
    row = instance_act(user=user, instance=Instance.objects.get(server_id=s.id), action="resize",
                       params={"flavor_id": "f-m3-quad"})
    row = action_run(action_id=row.pk)
    assert row.state == "failed"
    assert "No host can take the new flavor" in row.error
    assert Instance.objects.get(server_id=s.id).flavor_name == "m3.small"


def test_the_polled_detail_partial_keeps_the_resize_and_image_forms(user_client, cloud, allocation):
    cloud.add("box")
    project_sync(allocation=allocation)
    pk = Instance.objects.get().pk
    live = user_client.get(reverse("instances:detail", args=[pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in live and ">Resize</button>" in live and ">Create image</button>" in live


# --- The instance page: connect, costs, resize, volumes, console, history (issue 14) -----------

def synced(cloud, allocation, name="box", **kw):
    server = cloud.add(name, **kw)
    project_sync(allocation=allocation)
    return Instance.objects.get(server_id=server.id)


def with_public_ip(cloud, allocation, instance, address="203.0.113.7"):
    server = cloud.servers[instance.server_id]
    cloud.set(server.id, addresses=server.addresses + (compute.Address("private", address, "floating"),))
    project_sync(allocation=allocation)
    instance.refresh_from_db()
    return instance


@pytest.fixture
def glance(cloud, monkeypatch):
    calls = []

    def image_get(*, scope, image_id):
        calls.append(image_id)
        return replace(IMAGES[0], os_distro="ubuntu")

    monkeypatch.setattr(image, "image_get", image_get)
    return calls


def test_the_instance_page_shows_the_ssh_command_with_the_images_login_user(user_client, cloud, allocation, glance):
    instance = with_public_ip(cloud, allocation, synced(cloud, allocation))
    page = user_client.get(reverse("instances:detail", args=[instance.pk])).content.decode()
    assert '<code class="flex-grow-1 p-2 bg-body-tertiary border rounded text-break" id="ssh-command" ' \
           'data-testid="ssh-command">ssh ubuntu@203.0.113.7</code>' in page
    assert 'data-copy-target="#ssh-command"' in page and "js/copy.js" in page
    # the image is asked about once, then remembered (the page polls)
    user_client.get(reverse("instances:detail", args=[instance.pk]), HTTP_HX_REQUEST="true")
    assert glance == ["img-ubuntu"]


def test_without_a_public_ip_the_page_says_how_to_get_one(user_client, cloud, allocation, glance):
    instance = synced(cloud, allocation)
    page = user_client.get(reverse("instances:detail", args=[instance.pk])).content.decode()
    assert "ssh-command" not in page and "has no public IP" in page
    assert f'action="{reverse("instances:act", args=[instance.pk, "floating_ip_assign"])}"' in page
    assert ">Assign a public IP</button>" in page


def test_an_image_of_an_unknown_family_names_no_user(user_client, cloud, allocation, monkeypatch):
    monkeypatch.setattr(image, "image_get", lambda **kw: replace(IMAGES[0], os_distro="plan9"))
    instance = with_public_ip(cloud, allocation, synced(cloud, allocation))
    page = user_client.get(reverse("instances:detail", args=[instance.pk])).content.decode()
    assert "ssh &lt;user&gt;@203.0.113.7" in page and "the image's default user" in page


@pytest.mark.parametrize("status, now", [("ACTIVE", "4.00"), ("SHUTOFF", "2.00"), ("SHELVED_OFFLOADED", "0.00")])
def test_the_page_says_what_the_instance_costs_now_and_stopped_or_shelved(user_client, cloud, allocation, glance,
                                                                         status, now):
    instance = synced(cloud, allocation, flavor=FLAVORS[1], status=status)  # m3.quad: 4 vCPU
    page = user_client.get(reverse("instances:detail", args=[instance.pk])).content.decode()
    assert f"{now} SU/hour now" in page
    assert "Running 4.00 · stopped 2.00 · shelved 0.00 SU/hour" in page


def test_history_names_actions_in_words(user_client, cloud, allocation, glance):
    instance = synced(cloud, allocation)
    CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_id=instance.server_id,
                               target_name=instance.name, action="floating_ip_assign", state="succeeded")
    page = user_client.get(reverse("instances:detail", args=[instance.pk])).content.decode()
    assert "<td>Assign public IP</td>" in page and "Floatingipassign" not in page


def test_a_row_whose_last_action_failed_says_so_until_something_newer_or_a_dismiss(user_client, cloud, allocation):
    instance = synced(cloud, allocation)
    failed = CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_id=instance.server_id,
                                        target_name=instance.name, action="stop", state="failed",
                                        error="The cloud could not stop the instance.")
    page = user_client.get(reverse("instances:list")).content.decode()
    assert "Last action failed (Stop): The cloud could not stop the instance." in page
    assert f'action="{reverse("instances:action_dismiss", args=[failed.pk])}"' in page
    # the instance page says it at the top too
    detail = user_client.get(reverse("instances:detail", args=[instance.pk])).content.decode()
    assert "<strong>Stop failed:</strong> The cloud could not stop the instance." in detail
    # dismissed, it leaves the row and the page (the history keeps it)
    response = user_client.post(reverse("instances:action_dismiss", args=[failed.pk]),
                                {"next": reverse("instances:list")})
    assert response.status_code == 302 and response["Location"] == reverse("instances:list")
    assert 'data-testid="failed-action"' not in user_client.get(reverse("instances:list")).content.decode()
    detail = user_client.get(reverse("instances:detail", args=[instance.pk])).content.decode()
    assert 'data-testid="failed-action"' not in detail and "The cloud could not stop the instance." in detail
    CloudAction.objects.filter(pk=failed.pk).update(dismissed_at=None)
    CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_id=instance.server_id,
                               target_name=instance.name, action="start", state="succeeded")
    assert 'data-testid="failed-action"' not in user_client.get(reverse("instances:list")).content.decode()


def test_failed_actions_on_the_list_cost_one_query_for_the_page(user_client, cloud, allocation,
                                                               django_assert_max_num_queries):
    for i in range(20):
        instance = synced(cloud, allocation, name=f"s{i:02d}")
        CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_id=instance.server_id,
                                   target_name=instance.name, action="stop", state="failed", error=f"broke {i}")
    with django_assert_max_num_queries(8):
        page = user_client.get(reverse("instances:list")).content.decode()
    assert page.count('data-testid="failed-action"') == 20


# --- Resize: a chosen flavor, then a confirm step ------------------------------------------------


def test_the_resize_select_has_no_default_and_is_required(user_client, cloud, allocation, glance):
    instance = synced(cloud, allocation)
    page = user_client.get(reverse("instances:detail", args=[instance.pk])).content.decode()
    select = page[page.index('name="flavor_id"'):]
    select = select[:select.index("</select>")]
    assert "required" in select.split(">", 1)[0]
    assert select.split("<option", 2)[1].startswith(' value="" selected>Choose a flavor…')
    assert "selected" not in select.split("<option", 2)[2]


def test_a_resize_post_without_the_confirm_step_only_leads_to_it(user_client, cloud, allocation, glance):
    instance = synced(cloud, allocation)
    response = user_client.post(reverse("instances:act", args=[instance.pk, "resize"]), {"flavor_id": "f-m3-quad"})
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('instances:resize', args=[instance.pk])}?flavor_id=f-m3-quad"
    assert not CloudAction.objects.exists()


def test_the_confirm_step_shows_old_and_new_flavor_and_cost_and_only_confirm_acts(
        user_client, cloud, allocation, glance, django_capture_on_commit_callbacks):
    instance = synced(cloud, allocation)
    page = user_client.get(reverse("instances:resize", args=[instance.pk]), {"flavor_id": "f-m3-quad"}).content.decode()
    assert 'data-testid="resize-confirm"' in page and "Resize box to m3.quad?" in page
    assert "<td>m3.small</td>" in page and "<td><strong>m3.quad</strong></td>" in page
    assert "2.00 SU/hour" in page and '<strong>4.00 SU/hour</strong>' in page
    assert not CloudAction.objects.exists()
    # the htmx step is the fragment alone
    fragment = user_client.get(reverse("instances:resize", args=[instance.pk]), {"flavor_id": "f-m3-quad"},
                               HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and ">Confirm</button>" in fragment
    with django_capture_on_commit_callbacks() as callbacks:
        user_client.post(reverse("instances:act", args=[instance.pk, "resize"]),
                         {"flavor_id": "f-m3-quad", "confirmed": "yes"})
    row = CloudAction.objects.get()
    assert (row.action, row.params["flavor_name"], row.params["from_flavor_name"]) == ("resize", "m3.quad", "m3.small")
    assert len(callbacks) == 1


@pytest.mark.parametrize("flavor_id, error", [("", "Choose the flavor to resize to."),
                                              ("f-nope", "That flavor is not offered for this instance"),
                                              ("f-g3-xl", "Not enough SUs")])
def test_a_resize_step_without_a_fitting_flavor_says_why_at_the_field(user_client, cloud, allocation, glance,
                                                                     flavor_id, error):
    LedgerEntry = __import__("allocations.models", fromlist=["LedgerEntry"]).LedgerEntry
    LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=-9950, note="spent")
    instance = synced(cloud, allocation)
    page = user_client.get(reverse("instances:resize", args=[instance.pk]), {"flavor_id": flavor_id}).content.decode()
    assert 'data-testid="resize-error"' in page and error in page
    assert "resize-confirm" not in page and not CloudAction.objects.exists()


def test_a_resize_waiting_for_verification_offers_confirm_and_revert_prominently(user_client, cloud, allocation,
                                                                                  glance):
    instance = synced(cloud, allocation, status="VERIFY_RESIZE", flavor=FLAVORS[1])
    CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_id=instance.server_id,
                               target_name=instance.name, action="resize", state="succeeded",
                               params={"flavor_name": "m3.quad", "from_flavor_name": "m3.small"})
    page = user_client.get(reverse("instances:detail", args=[instance.pk])).content.decode()
    banner = page[page.index('data-testid="verify-resize"'):]
    banner = banner[:banner.index('<div class="row g-3">')]
    assert "now runs as m3.quad (it was m3.small)" in banner
    assert ">Confirm resize</button>" in banner and ">Revert resize</button>" in banner
    assert page.count(">Confirm resize</button>") == 1  # not repeated among the other actions


# --- Volumes from the instance page ------------------------------------------------------------


def volume(allocation, name, **kw):
    return Volume.objects.create(allocation=allocation, project_id="proj-1", volume_id=f"vol-{name}", name=name,
                                 size_gb=kw.pop("size_gb", 10), status=kw.pop("status", "available"), **kw)


def test_attach_a_volume_from_the_instance_page_with_no_preselected_choice(
        user_client, cloud, allocation, glance, django_capture_on_commit_callbacks):
    instance = synced(cloud, allocation)
    data = volume(allocation, "data")
    volume(allocation, "busy", status="in-use")
    page = user_client.get(reverse("instances:detail", args=[instance.pk])).content.decode()
    form = page[page.index('data-testid="attach-form"'):]
    form = form[:form.index("</form>")]
    assert '<option value="" selected>Choose a volume…</option>' in form and "required" in form
    assert "data (10 GB)" in form and "busy" not in form
    # nothing chosen: the page says so at the field, and nothing is queued
    response = user_client.post(reverse("instances:attach_volume", args=[instance.pk]), {"volume": ""})
    assert response.status_code == 200 and "Choose the volume to attach." in response.content.decode()
    assert not CloudAction.objects.exists()
    with django_capture_on_commit_callbacks() as callbacks:
        response = user_client.post(reverse("instances:attach_volume", args=[instance.pk]), {"volume": data.pk})
    assert response.status_code == 302 and response["Location"] == reverse("instances:detail", args=[instance.pk])
    row = CloudAction.objects.get()
    assert (row.action, row.target_id, row.params["server_id"]) == ("attach", "vol-data", instance.server_id)
    assert len(callbacks) == 1


def test_an_attached_volume_shows_its_device_and_how_to_mount_it(user_client, cloud, allocation, glance):
    instance = synced(cloud, allocation)
    volume(allocation, "data-1", status="in-use", attachments=[{"server_id": instance.server_id, "device": "/dev/vdb"}])
    page = user_client.get(reverse("instances:detail", args=[instance.pk])).content.decode()
    assert '<code data-testid="device">/dev/vdb</code>' in page
    assert "sudo mkdir -p /media/volume/data-1 &amp;&amp; sudo mount /dev/vdb /media/volume/data-1" in page
    assert "sudo mkfs.ext4 /dev/vdb" in page
    assert 'data-confirm="Detach the volume data-1 from box?' in page


# --- Console -----------------------------------------------------------------------------------


def test_the_console_page_shows_the_log_in_a_pre_with_refresh_and_a_novnc_link(user_client, cloud, allocation,
                                                                                monkeypatch):
    monkeypatch.setattr(compute, "server_console_log", lambda **kw: "cloud-init: <done>\nlogin:")
    instance = synced(cloud, allocation)
    page = user_client.get(reverse("instances:console", args=[instance.pk])).content.decode()
    assert "cloud-init: &lt;done&gt;\nlogin:</pre>" in page
    assert f'hx-get="{reverse("instances:console_log", args=[instance.pk])}"' in page and ">Refresh</a>" in page
    assert f'href="{reverse("instances:console_vnc", args=[instance.pk])}"' in page
    fragment = user_client.get(reverse("instances:console_log", args=[instance.pk]),
                               HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in fragment and "login:</pre>" in fragment


def test_a_console_the_cloud_refuses_is_said_in_words(user_client, cloud, allocation, monkeypatch):
    from portal.cloud.errors import Conflict

    def refuse(**kw):
        raise Conflict()

    monkeypatch.setattr(compute, "server_console_log", refuse)
    monkeypatch.setattr(compute, "server_console_url", refuse)
    instance = synced(cloud, allocation)
    page = user_client.get(reverse("instances:console", args=[instance.pk])).content.decode()
    assert "The console log is not available: The resource is busy" in page
    response = user_client.get(reverse("instances:console_vnc", args=[instance.pk]), follow=True)
    assert "The graphical console is not available" in response.content.decode()


# --- Deleting releases the public IP the portal made ---------------------------------------------


@pytest.fixture
def floating_ips(cloud, monkeypatch):
    ips = {"fip-made": network.FloatingIP("fip-made", "203.0.113.7", "ACTIVE", "port-1", "10.0.0.10", "net-pub"),
           "fip-own": network.FloatingIP("fip-own", "203.0.113.8", "ACTIVE", "port-1", "10.0.0.10", "net-pub")}
    released = []
    monkeypatch.setattr(network, "floating_ip_list", lambda **kw: list(ips.values()))
    monkeypatch.setattr(network, "floating_ip_delete", lambda *, scope, floating_ip_id: released.append(floating_ip_id))
    return released


def launched_with_ip(cloud, allocation, user):
    instance = with_public_ip(cloud, allocation, synced(cloud, allocation))
    launch = LaunchRequest.objects.create(allocation=allocation, project_id="proj-1", requested_by=user, name="box",
                                          flavor_id="f-m3-small", flavor_name="m3.small", state="succeeded",
                                          assign_floating_ip=True, floating_ip_ids=["fip-made"])
    Instance.objects.filter(pk=instance.pk).update(launch_request=launch)
    return Instance.objects.select_related("launch_request", "allocation").get(pk=instance.pk)


@pytest.mark.parametrize("keep, released", [(False, ["fip-made"]), (True, [])])
def test_deleting_releases_the_public_ip_the_portal_made_unless_kept(user_client, cloud, allocation, user, glance,
                                                                    floating_ips, keep, released):

    instance = launched_with_ip(cloud, allocation, user)
    server = cloud.servers[instance.server_id]  # a second address someone attached by hand stays
    cloud.set(server.id, addresses=server.addresses + (compute.Address("private", "203.0.113.8", "floating"),))
    page = user_client.get(reverse("instances:detail", args=[instance.pk])).content.decode()
    assert "Keep the public IP 203.0.113.7" in page and 'name="keep_floating_ip"' in page
    user_client.post(reverse("instances:act", args=[instance.pk, "delete"]),
                     {"keep_floating_ip": ["203.0.113.7"] if keep else []})
    row = action_run(action_id=CloudAction.objects.get(action="delete").pk)
    assert row.state == "succeeded", row.error
    assert cloud.servers[instance.server_id].status == "DELETED"
    assert floating_ips == released


def test_an_ip_assigned_through_the_portal_is_released_with_the_instance(cloud, allocation, user, floating_ips):
    instance = with_public_ip(cloud, allocation, synced(cloud, allocation), address="203.0.113.8")
    CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_id=instance.server_id,
                               target_name=instance.name, action="floating_ip_assign", state="succeeded",
                               result={"address": "203.0.113.8"})
    row = action_run(action_id=instance_act(user=user, instance=instance, action="delete").pk)
    assert row.state == "succeeded" and floating_ips == ["fip-own"]


def test_only_a_failed_action_on_an_instance_can_be_dismissed(user_client, cloud, allocation):
    instance = synced(cloud, allocation)
    done = CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_id=instance.server_id,
                                      target_name=instance.name, action="stop", state="succeeded")
    response = user_client.post(reverse("instances:action_dismiss", args=[done.pk]), follow=True)
    assert "Only a failed action on an instance can be dismissed." in response.content.decode()
    done.refresh_from_db()
    assert done.dismissed_at is None


def test_a_neutron_refusal_while_looking_up_public_ips_does_not_stop_the_delete(cloud, allocation, user, monkeypatch):
    from portal.cloud.errors import Forbidden

    def refuse(**kw):
        raise Forbidden()

    monkeypatch.setattr(network, "floating_ip_list", refuse)
    instance = with_public_ip(cloud, allocation, synced(cloud, allocation))
    CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_id=instance.server_id,
                               target_name=instance.name, action="floating_ip_assign", state="succeeded",
                               result={"address": "203.0.113.7"})
    row = action_run(action_id=instance_act(user=user, instance=instance, action="delete").pk)
    assert row.state == "succeeded" and cloud.servers[instance.server_id].status == "DELETED"
