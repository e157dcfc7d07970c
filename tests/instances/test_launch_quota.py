"""Quota before the cloud: the launch and volume forms show what is left of the project's quota
and refuse at the field what does not fit, with the cloud faked at the gateway
(portal.cloud.quotas.project_quota_usage, see conftest.roomy_quota)."""
import html
import re

import pytest
from django.urls import reverse

from instances.models import CloudAction, LaunchRequest
from portal.cloud.errors import CloudUnavailable

from .conftest import roomy_quota


def launch_page(client, allocation) -> str:
    return html.unescape(client.get(reverse("instances:launch"), {"project": allocation.pk}).content.decode())


def post_launch(client, allocation, **overrides):
    data = {"project": allocation.pk, "name": "worker", "image": "img-ubuntu", "flavor": "f-m3-small", "count": 1}
    data.update(overrides)
    return client.post(f"{reverse('instances:launch')}?project={allocation.pk}", data)


def field_errors(body: str) -> list[str]:
    return [html.unescape(re.sub(r"\s+", " ", e).strip())
            for e in re.findall(r'data-testid="field-error"[^>]*>(.*?)</div>', body)]


def option(body: str, value: str) -> str:
    return re.search(rf'<option value="{value}"[^>]*>[^<]*</option>', body).group(0)


def test_the_launch_page_shows_what_is_left_and_disables_flavors_that_cannot_fit(user_client, cloud, allocation):
    # given 106 of 150 vCPUs in use: 44 free
    cloud.quota = roomy_quota(cores=(106, 150), instances=(3, 150), ram_gb=(50, 585))
    page = launch_page(user_client, allocation)
    panel = re.search(r'data-testid="quota-panel".*?</section>', page, re.S).group(0)
    assert re.search(r'data-quota="cores".*?44 free</strong> <span class="text-body-secondary">of 150', panel, re.S)
    assert re.search(r'data-quota="instances".*?147 free', panel, re.S)
    assert re.search(r'data-quota="ram_gb".*?535 free', panel, re.S)
    # r3.large needs 64 vCPUs: shown, but disabled, with the reason in its text
    assert option(page, "f-r3-large") == ('<option value="f-r3-large" disabled>'
                                          'r3.large — needs 64 vCPUs, 44 free</option>')
    assert "disabled" not in option(page, "f-m3-quad") and "m3.quad — 4 vCPU" in option(page, "f-m3-quad")


def test_ram_and_gpu_limits_disable_flavors_too(user_client, cloud, allocation):
    cloud.quota = roomy_quota(ram_gb=(580, 585), gpus=(4, 4))
    page = launch_page(user_client, allocation)
    assert "m3.small — needs 6 GB of RAM, 5 GB free" in option(page, "f-m3-small")
    assert "needs 1 GPU, 0 free" in option(page, "f-g3-small") and "disabled" in option(page, "f-g3-small")
    assert re.search(r'data-quota="gpus".*?0 free</strong>', page, re.S)


def test_without_a_gpu_limit_the_panel_says_gpus_count_against_vcpus(user_client, cloud, allocation):
    page = launch_page(user_client, allocation)
    assert "no separate limit: GPU flavors count against the vCPUs" in page


def test_a_disabled_flavor_posted_anyway_is_refused_at_the_field_and_the_input_kept(
        user_client, cloud, allocation, django_capture_on_commit_callbacks):
    cloud.quota = roomy_quota(cores=(106, 150))
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_launch(user_client, allocation, flavor="f-r3-large", name="big-job")
    body = response.content.decode()
    assert response.status_code == 200
    assert field_errors(body) == ["r3.large needs 64 vCPUs; 44 of 150 are free."]
    assert 'value="big-job"' in body
    assert not LaunchRequest.objects.exists() and not callbacks and cloud.calls["server_create"] == 0


def test_a_count_that_does_not_fit_is_refused_at_the_count_in_vcpus(user_client, cloud, allocation):
    cloud.quota = roomy_quota(cores=(120, 150))
    body = post_launch(user_client, allocation, flavor="f-m3-quad", count=8).content.decode()
    assert field_errors(body) == ["8 × m3.quad need 32 vCPUs; 30 of 150 are free."]
    assert re.search(r'name="count" value="8"', body)
    assert not LaunchRequest.objects.exists()


def test_the_count_is_bounded_by_the_free_instances(user_client, cloud, allocation):
    cloud.quota = roomy_quota(instances=(8, 10))
    page = launch_page(user_client, allocation)
    assert re.search(r'<input type="number" name="count"[^>]*max="2"', page)
    body = post_launch(user_client, allocation, count=3).content.decode()
    assert field_errors(body) == [
        "3 instances would exceed the project's instance limit: 10 allowed, 8 in use, 2 free."]
    assert not LaunchRequest.objects.exists()


def test_public_ips_and_root_volumes_are_checked_too(user_client, cloud, allocation):
    cloud.quota = roomy_quota(floating_ips=(10, 10), volume_gb=(900, 1000))
    body = post_launch(user_client, allocation, count=2, assign_floating_ip="on", root_disk_gb=100).content.decode()
    assert field_errors(body) == [
        "2 root disks of 100 GB would exceed the project's volume storage: 1,000 GB allowed, 900 used, 100 GB free.",
        "2 instances need 2 public IPs; 0 of the project's 10 are free. Release one you no longer use (Public IPs), "
        "or launch without one."]
    assert not LaunchRequest.objects.exists()


def test_a_launch_that_fits_goes_through(user_client, cloud, allocation, django_capture_on_commit_callbacks):
    cloud.quota = roomy_quota(cores=(106, 150), instances=(3, 10), floating_ips=(9, 10))
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_launch(user_client, allocation, flavor="f-m3-quad", count=2, assign_floating_ip="")
    assert response.status_code == 302 and LaunchRequest.objects.get().count == 2 and len(callbacks) == 1


def test_unlimited_quota_refuses_nothing(user_client, cloud, allocation):
    cloud.quota = roomy_quota(cores=(500, -1), ram_gb=(9000, -1), instances=(99, -1))
    page = launch_page(user_client, allocation)
    assert re.search(r'data-quota="cores".*?<strong>no limit</strong>', page, re.S)
    assert "disabled" not in option(page, "f-r3-large")
    assert post_launch(user_client, allocation, flavor="f-g3-xl", count=2).status_code == 302


def test_an_unreadable_quota_is_noted_and_the_launch_still_works(user_client, cloud, allocation, monkeypatch):
    def down(*, scope):
        raise CloudUnavailable()

    monkeypatch.setattr("portal.cloud.quotas.project_quota_usage", down)
    page = launch_page(user_client, allocation)
    assert 'data-testid="quota-unknown"' in page and "could not be read just now" in page
    assert post_launch(user_client, allocation).status_code == 302


def test_the_quota_is_read_once_then_again_after_the_portals_own_launch(user_client, cloud, allocation):
    launch_page(user_client, allocation)
    launch_page(user_client, allocation)
    assert cloud.calls["project_quota_usage"] == 1  # cached
    assert post_launch(user_client, allocation).status_code == 302
    cloud.quota = roomy_quota(cores=(2, 1000), instances=(1, 100))
    page = launch_page(user_client, allocation)
    assert cloud.calls["project_quota_usage"] == 2  # the launch moved the numbers: read again
    assert re.search(r'data-quota="instances".*?99 free', page, re.S)


def test_the_cost_preview_says_when_the_choice_does_not_fit(user_client, cloud, allocation):
    cloud.quota = roomy_quota(cores=(120, 150))
    url = reverse("instances:launch_cost")
    body = user_client.get(url, {"project": allocation.pk, "flavor": "f-m3-quad", "count": 8}).content.decode()
    assert "32.00 SU/hour" in body
    assert "Does not fit the quota: 8 × m3.quad need 32 vCPUs; 30 of 150 are free." in body
    body = user_client.get(url, {"project": allocation.pk, "flavor": "f-m3-quad", "count": 2}).content.decode()
    assert "Does not fit" not in body


# --- The volume form ------------------------------------------------------------------------


@pytest.fixture
def volume_options(monkeypatch):
    from portal.cloud import block_storage, image

    monkeypatch.setattr(block_storage, "snapshot_list", lambda **kw: [])
    monkeypatch.setattr(image, "image_list", lambda **kw: [])


def post_volume(client, allocation, **fields):
    return client.post(f"{reverse('instances:volume_create')}?project={allocation.pk}",
                       {"project": allocation.pk, **fields})


def test_a_volume_larger_than_the_free_storage_is_refused_at_the_size_with_the_name_kept(
        user_client, cloud, allocation, volume_options, django_capture_on_commit_callbacks):
    cloud.quota = roomy_quota(volume_gb=(0, 1000))
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_volume(user_client, allocation, name="data-1", size_gb=5000)
    body = response.content.decode()
    assert response.status_code == 200
    assert field_errors(body) == [
        "5,000 GB would exceed the project's volume storage: 1,000 GB allowed, 0 used, 1,000 GB free."]
    assert 'value="data-1"' in body and 'value="5000"' in body
    assert not CloudAction.objects.exists() and not callbacks


def test_the_volume_form_shows_free_storage_and_accepts_what_fits(user_client, cloud, allocation, volume_options,
                                                                 django_capture_on_commit_callbacks):
    cloud.quota = roomy_quota(volume_gb=(250, 1000), volumes=(3, 10))
    page = html.unescape(
        user_client.get(reverse("instances:volume_create"), {"project": allocation.pk}).content.decode())
    assert re.search(r'data-quota="volume_gb".*?750 free</strong> <span class="text-body-secondary">of 1,000',
                     page, re.S)
    assert re.search(r'data-quota="volumes".*?7 free', page, re.S)
    assert "750 GB of the project's volume storage are free." in page
    with django_capture_on_commit_callbacks():
        response = post_volume(user_client, allocation, name="data-1", size_gb=750)
    assert response.status_code == 302 and CloudAction.objects.get().params["size_gb"] == 750


def test_no_volumes_left_is_refused_at_the_size(user_client, cloud, allocation, volume_options):
    cloud.quota = roomy_quota(volumes=(10, 10))
    body = post_volume(user_client, allocation, name="data-1", size_gb=10).content.decode()
    assert field_errors(body) == ["The project already has 10 of its 10 volumes; delete one you no longer need first."]
