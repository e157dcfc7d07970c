"""The volumes page and the network pages in Chromium, on the real devcloud (issue 14, part C)."""
import re
from pathlib import Path

import pytest
from celery.app.task import Task

from tests.browser.conftest import sign_in  # noqa: E402
from tests.cloud_sdk import connection_get
from tests.fixtures.celery_worker import wait_for
from tests.instances.integration_support import devcloud_ready  # noqa: F401
from tests.integration.test_volumes_network import instances_allocation  # noqa: F401 - a PI of its own


@pytest.fixture(scope="session")
def devcloud(devcloud_ready):  # noqa: F811
    return devcloud_ready


pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def page_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_a_refused_volume_create_shows_as_a_failed_row_and_is_dismissed(
        page, screenshot, instances_allocation, celery_worker_process, monkeypatch):
    allocation = instances_allocation
    sign_in(page, allocation.pi)
    page.goto(f"/volumes/?project={allocation.pk}")
    page.get_by_role("link", name="Create volume").click()
    page.get_by_label("Name").fill("data-1")
    page.get_by_label("Size (GB)").fill("2")
    # the form accepts it; the task is held while the project's storage quota is lowered to 1 GB
    held = []
    monkeypatch.setattr(Task, "apply_async", lambda task, *a, **k: held.append((task, a, k)))
    page.get_by_role("button", name=re.compile("^Create")).click()
    page.get_by_role("heading", name="Volumes").wait_for()
    wait_for(lambda: held, message="the create to be queued")
    page.get_by_test_id("volume-creating-row").filter(has_text="data-1").wait_for()
    screenshot("creating-row")
    connection_get().block_storage.update_quota_set(allocation.openstack_project_id, gigabytes=1)
    monkeypatch.undo()
    task, args, kwargs = held[0]
    task.apply_async(*args, **kwargs)

    # the row turns into a failure with Cinder's reason in numbers (the page polls while it runs)
    failed = page.get_by_test_id("volume-failed-row")
    failed.wait_for(timeout=60_000)
    assert "Creating volume data-1 failed." in failed.inner_text()
    reason = failed.get_by_test_id("failure-reason").inner_text()
    assert "volume storage quota (1 GB) would be exceeded by 1 GB" in reason
    screenshot("failed-row")
    # the dashboard's recent activity says it too
    page.goto("/")
    page.get_by_text(re.compile(r"volume storage quota \(1 GB\) would be exceeded by 1 GB")).first.wait_for()
    screenshot("dashboard-failure")
    page.goto(f"/volumes/?project={allocation.pk}")
    failed = page.get_by_test_id("volume-failed-row")
    failed.get_by_role("button", name="Dismiss").click()
    page.get_by_text("No volumes.").wait_for()
    assert page.get_by_test_id("volume-failed-row").count() == 0


def test_generate_a_key_and_edit_security_group_rules(page, screenshot, instances_allocation):
    allocation = instances_allocation
    page.on("dialog", lambda dialog: dialog.accept())  # removing a rule asks first
    sign_in(page, allocation.pi)

    # keys: generate one; its private key downloads once
    page.goto("/keys/")
    page.locator("#id_generate-name").fill("browser-key")
    page.get_by_role("button", name="Generate key").click()
    link = page.get_by_test_id("private-key-download")
    link.wait_for()
    screenshot("key-generated")
    with page.expect_download() as info:
        link.click()
    body = Path(info.value.path()).read_text()
    assert body.startswith("-----BEGIN OPENSSH PRIVATE KEY-----") and info.value.suggested_filename == "browser-key.pem"
    href = link.get_attribute("href")
    assert page.request.get(href).status == 404  # once only
    page.goto("/keys/")
    page.get_by_test_id("key-row").filter(has_text="browser-key").wait_for()
    assert page.get_by_test_id("private-key-download").count() == 0

    # security groups: a new group with SSH and ping, then an HTTPS rule from the preset
    page.goto(f"/security-groups/?project={allocation.pk}")
    page.locator("#id_name").fill("web")
    page.get_by_role("button", name="Create", exact=True).click()
    group = page.locator('section[data-group-name="web"]')
    group.get_by_text("SSH (22/tcp) from anywhere").wait_for()
    group.get_by_text("Add a rule").click()
    group.get_by_label("Allow").select_option("https")
    group.get_by_role("button", name="Add rule").click()
    group = page.locator('section[data-group-name="web"]')
    group.get_by_text("HTTPS (443/tcp) from anywhere").wait_for()

    # a network written wrong is refused at its field, the input kept
    group.get_by_text("Add a rule").click()
    group.get_by_label("Port or range").fill("8000-8080")
    group.get_by_label("From (CIDR)").fill("192.0.2.7/24")
    group.get_by_role("button", name="Add rule").click()
    group = page.locator('section[data-group-name="web"]')
    group.get_by_text("did you mean 192.0.2.0/24").wait_for()
    assert group.get_by_label("Port or range").input_value() == "8000-8080"
    screenshot("rule-refused-at-the-field")
    group.get_by_label("From (CIDR)").fill("192.0.2.0/24")
    group.get_by_role("button", name="Add rule").click()
    group = page.locator('section[data-group-name="web"]')
    group.get_by_text("TCP ports 8000–8080 from 192.0.2.0/24").wait_for()
    screenshot("security-group-rules")

    # removing a rule (confirmed) takes it out of Neutron
    group.get_by_test_id("rule").filter(has_text="HTTPS (443/tcp)").get_by_role("button", name="Remove").click()
    page.get_by_text("Rule removed: HTTPS (443/tcp) from anywhere.").wait_for()
    neutron = connection_get(project_id=allocation.openstack_project_id).network
    (sg,) = [g for g in neutron.security_groups(project_id=allocation.openstack_project_id) if g.name == "web"]
    assert {(r.port_range_min, r.remote_ip_prefix) for r in neutron.security_group_rules(
        security_group_id=sg.id, direction="ingress", protocol="tcp")} == {(22, "0.0.0.0/0"), (8000, "192.0.2.0/24")}

    # every page of this part fits a 400 px screen
    page.set_viewport_size({"width": 400, "height": 800})
    for name, path in [("volumes", "/volumes/"), ("keys", "/keys/"),
                       ("security-groups", f"/security-groups/?project={allocation.pk}"),
                       ("public-ips", f"/floating-ips/?project={allocation.pk}")]:
        page.goto(path)
        screenshot(f"narrow-{name}")
        assert page_width(page) <= 400, f"{path} is {page_width(page)} px wide at 400 px"


def test_attach_a_volume_from_its_row_and_read_how_to_mount_it(
        page, screenshot, instances_allocation, celery_worker_process, client):
    from tests.instances.integration_support import launch_via_form, wait_final

    allocation = instances_allocation
    client.force_login(allocation.pi)
    launched = wait_final(launch_via_form(client, allocation, flavor="m3.tiny", name="analysis"))
    assert launched.state == "succeeded", launched.error
    page.on("dialog", lambda dialog: dialog.accept())  # detach asks first
    sign_in(page, allocation.pi)
    page.goto(f"/volumes/create/?project={allocation.pk}")
    page.get_by_label("Name").fill("results")
    page.get_by_label("Size (GB)").fill("1")
    page.get_by_role("button", name=re.compile("^Create")).click()
    row = page.get_by_test_id("volume-row").filter(has_text="results")
    row.get_by_text("available").wait_for(timeout=60_000)

    # no instance is preselected: the person picks one
    picker = row.get_by_label("Instance to attach results to")
    assert picker.input_value() == ""
    picker.select_option(label="analysis")
    row.get_by_role("button", name="Attach").click()
    row = page.get_by_test_id("volume-row").filter(has_text="results")
    device = row.get_by_test_id("volume-device")
    device.wait_for(timeout=60_000)
    row.get_by_text("Mount it").click()
    assert row.get_by_test_id("mount-hint").inner_text() == (
        f"sudo mkdir -p /media/volume/results && sudo mount {device.inner_text()} /media/volume/results")
    screenshot("attached-with-mount-hint")
    page.set_viewport_size({"width": 400, "height": 800})
    page.reload()
    screenshot("attached-narrow")
    assert page_width(page) <= 400, f"the volumes page is {page_width(page)} px wide at 400 px"
    page.set_viewport_size({"width": 1280, "height": 800})

    # detach (confirmed in the dialog)
    page.get_by_test_id("volume-row").filter(has_text="results").get_by_role("button", name="Detach").click()
    page.get_by_test_id("volume-row").filter(has_text="results").get_by_label(
        "Instance to attach results to").wait_for(timeout=60_000)
    volumes = connection_get(project_id=allocation.openstack_project_id).block_storage.volumes()
    assert [v.status for v in volumes if v.name == "results"] == ["available"]
