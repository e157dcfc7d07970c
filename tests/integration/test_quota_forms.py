"""Quota before the cloud, against the real local cloud: the forms read the project's own quota
as the person (Nova, Cinder, Neutron, Keystone limits), show what is left, and refuse at the
field what Nova or Cinder would refuse later."""
import html
import re

import pytest
from django.urls import reverse

from instances.models import CloudAction, LaunchRequest
from instances.services import launch_provision
from tests.cloud_sdk import connection_get
from tests.factories import UserFactory
from tests.instances.integration_support import provision_directly, remove_directly, run_passes

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def quota_allocation(devcloud, transactional_db):
    """A research-CPU allocation provisioned for real (m3 flavors; 150 vCPUs, 585 GB RAM by default)."""
    allocation = provision_directly(pi=UserFactory(), kind="research_cpu", title="Quota test")
    yield allocation
    remove_directly(allocation)


@pytest.fixture
def pi_client(client, quota_allocation):
    client.force_login(quota_allocation.pi)
    return client


def flavor_id(name: str) -> str:
    return connection_get().compute.find_flavor(name, ignore_missing=False).id


def text(response) -> str:
    return html.unescape(response.content.decode())


def field_errors(body: str) -> list[str]:
    return [re.sub(r"\s+", " ", e).strip() for e in re.findall(r'data-testid="field-error"[^>]*>(.*?)</div>', body)]


def quota_cell(body: str, key: str) -> str:
    """One item of the quota panel as read: "vCPUs 44 free of 76"."""
    cell = re.search(rf'data-quota="{key}">(.*?)</dd>', body, re.S).group(1)
    return " ".join(re.sub(r"<[^>]+>", " ", cell).split())


def test_the_launch_form_disables_what_the_real_vcpu_quota_cannot_hold(pi_client, quota_allocation, monkeypatch):
    pid = quota_allocation.openstack_project_id
    member = connection_get(project_id=pid)
    # given a 32-vCPU server made from the CLI, and the admin allowing 76 vCPUs: 44 are free
    member.compute.create_server(name="cli-xl", flavor_id=flavor_id("m3.xl"), networks="none",
                                 image_id=member.image.find_image("Featured-Ubuntu24", ignore_missing=False).id)
    connection_get().set_compute_quotas(pid, cores=76)
    launch = f"{reverse('instances:launch')}?project={quota_allocation.pk}"

    page = text(pi_client.get(launch))
    assert "vCPUs 44 free of 76" in quota_cell(page, "cores")
    assert "RAM (GB) 460 free of 585" in quota_cell(page, "ram_gb")
    big = re.search(rf'<option value="{flavor_id("m3.2xl")}"[^>]*>[^<]*</option>', page).group(0)
    assert " disabled" in big and ">m3.2xl — needs 64 vCPUs, 44 free<" in big
    assert " disabled" not in re.search(rf'<option value="{flavor_id("m3.xl")}"[^>]*>', page).group(0)

    # a flavor or a count that does not fit is refused at the field, before any cloud call
    image_id = connection_get().image.find_image("Featured-Ubuntu24", ignore_missing=False).id
    form = {"project": quota_allocation.pk, "name": "job", "image": image_id, "count": 1}
    body = text(pi_client.post(launch, {**form, "flavor": flavor_id("m3.2xl")}))
    assert field_errors(body) == ["m3.2xl needs 64 vCPUs; 44 of 76 are free."]
    body = text(pi_client.post(launch, {**form, "flavor": flavor_id("m3.xl"), "count": 2}))
    assert field_errors(body) == ["2 × m3.xl need 64 vCPUs; 44 of 76 are free."] and 'value="job"' in body
    assert not LaunchRequest.objects.exists()

    # a launch that fits goes through, and the numbers move once the portal made the server
    # (provisioned here in-process: a session worker must not run the same launch beside us)
    monkeypatch.setattr("instances.tasks.launch_provision.apply_async", lambda *a, **k: None)
    response = pi_client.post(launch, {**form, "flavor": flavor_id("m3.small")})
    assert response.status_code == 302
    row = run_passes(lambda pk: launch_provision(request_id=pk), LaunchRequest.objects.get().pk)
    assert row.state == "succeeded", row.error
    assert "vCPUs 42 free of 76" in quota_cell(text(pi_client.get(launch)), "cores")


def test_the_volume_form_refuses_more_than_the_real_free_storage(pi_client, quota_allocation):
    pid = quota_allocation.openstack_project_id
    member = connection_get(project_id=pid)
    # given a 1,000 GB storage quota and a 300 GB volume made from the CLI
    connection_get().block_storage.update_quota_set(pid, gigabytes=1000)
    volume = member.block_storage.create_volume(size=300, name="cli-data")
    member.block_storage.wait_for_status(volume, status="available", wait=60, interval=1)
    create = f"{reverse('instances:volume_create')}?project={quota_allocation.pk}"

    page = text(pi_client.get(create))
    assert "Volume storage (GB) 700 free of 1,000" in quota_cell(page, "volume_gb")
    body = text(pi_client.post(create, {"project": quota_allocation.pk, "name": "data-1", "size_gb": 5000}))
    assert field_errors(body) == [
        "5,000 GB would exceed the project's volume storage: 1,000 GB allowed, 300 used, 700 GB free."]
    assert 'value="data-1"' in body and not CloudAction.objects.exists()

    # what fits is accepted and queued
    response = pi_client.post(create, {"project": quota_allocation.pk, "name": "data-1", "size_gb": 700})
    assert response.status_code == 302 and CloudAction.objects.get().params["size_gb"] == 700


def test_public_ips_follow_the_real_neutron_quota(pi_client, quota_allocation):
    pid = quota_allocation.openstack_project_id
    connection_get().network.update_quota(pid, floating_ips=0)
    launch = f"{reverse('instances:launch')}?project={quota_allocation.pk}"
    assert "Public IPs 0 free of 0" in quota_cell(text(pi_client.get(launch)), "floating_ips")
    image_id = connection_get().image.find_image("Featured-Ubuntu24", ignore_missing=False).id
    body = text(pi_client.post(launch, {"project": quota_allocation.pk, "name": "web", "image": image_id,
                                        "flavor": flavor_id("m3.small"), "count": 1, "assign_floating_ip": "on"}))
    assert field_errors(body) == ["The project's quota allows no public IPs: launch without one."]
    assert not LaunchRequest.objects.exists()
