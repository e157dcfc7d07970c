import pytest
from django.urls import reverse

from instances.models import CloudAction
from instances.services import project_sync
from portal.cloud import compute
from tests.instances.conftest import FLAVORS


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
    with django_assert_max_num_queries(8):  # session, user, allocations, instances: the same for 3 and 60
        response = user_client.get(reverse("instances:list"))
    assert response.content.decode().count('data-testid="instance-row"') == n
    assert sum(cloud.calls.values()) == 0  # pages read the mirror, never the cloud


def test_non_member_gets_404_on_every_instance_url(client, cloud, other_allocation, user):
    s = cloud.add("theirs", project_id="proj-2")
    project_sync(allocation=other_allocation)
    from instances.models import Instance
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
    from instances.models import Instance
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
    from instances.models import Instance
    pk = Instance.objects.get(server_id=s.id).pk
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        user_client.post(reverse("instances:act", args=[pk, "stop"]))
        response = user_client.post(reverse("instances:act", args=[pk, "reboot_soft"]), follow=True)
    assert len(callbacks) == 1
    assert "Another action on this instance is still running" in response.content.decode()
    row = CloudAction.objects.get()
    assert (row.action, row.state, row.requested_by_id) == ("stop", "queued", allocation.pi_id)


def test_action_run_changes_state_and_refreshes_the_mirror(cloud, allocation, user):
    from instances.models import Instance
    from instances.services import action_run, instance_act
    s = cloud.add("box")
    project_sync(allocation=allocation)
    row = instance_act(user=user, instance=Instance.objects.get(server_id=s.id), action="stop")
    row = action_run(action_id=row.pk)
    assert row.state == "succeeded"
    assert Instance.objects.get(server_id=s.id).status == "SHUTOFF"


def test_a_resize_nova_could_not_place_fails_with_words_and_keeps_the_flavor(cloud, allocation, user, monkeypatch):
    from django.utils import timezone

    from instances.models import Instance
    from instances.services import action_run, instance_act
    s = cloud.add("box")
    cloud.clock = timezone.now()
    project_sync(allocation=allocation)
    row = instance_act(user=user, instance=Instance.objects.get(server_id=s.id), action="resize",
                       params={"flavor_id": "f-m3-quad"})
    row = action_run(action_id=row.pk)
    assert row.state == "failed"
    assert "No host can take the new flavor" in row.error
    assert Instance.objects.get(server_id=s.id).flavor_name == "m3.small"


def test_the_polled_detail_partial_keeps_the_resize_and_image_forms(user_client, cloud, allocation):
    from instances.models import Instance
    cloud.add("box")
    project_sync(allocation=allocation)
    pk = Instance.objects.get().pk
    live = user_client.get(reverse("instances:detail", args=[pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "<html" not in live and ">Resize</button>" in live and ">Create image</button>" in live
