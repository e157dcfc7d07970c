"""The instance page in Chromium on the real devcloud (issue 14): how to connect, the console, a resize
that needs a chosen flavor and a confirm step, and a delete that keeps the public IP when asked."""
import re

import pytest
from django.urls import reverse

from instances.models import CloudAction, Instance
from instances.services import project_sync
from tests.browser.conftest import sign_in  # noqa: E402
from tests.cloud_sdk import connection_get
from tests.fixtures.celery_worker import wait_for
from tests.instances.integration_support import devcloud_ready, instances_allocation, launch_via_form, wait_final  # noqa: F401


@pytest.fixture(scope="session")
def devcloud(devcloud_ready):
    return devcloud_ready


pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def launched(client, allocation, name: str, **fields) -> Instance:
    client.force_login(allocation.pi)
    row = wait_final(launch_via_form(client, allocation, name=name, **fields))
    assert row.state == "succeeded", row.error
    return Instance.objects.get(name=name, deleted_at__isnull=True)


def document_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_the_instance_page_shows_the_ssh_command_the_console_and_keeps_the_ip_when_asked(
        page, screenshot, client, instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    instance = launched(client, instances_allocation, "sshable", flavor="m3.tiny", assign_floating_ip="on")
    neutron = connection_get(project_id=pid).network
    ports = {p.id for p in neutron.ports(device_id=instance.server_id)}
    [fip] = [ip for ip in neutron.ips(project_id=pid) if ip.port_id in ports]
    address = fip.floating_ip_address
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, instances_allocation.pi)

    # the page names the login user of the image and the exact ssh command, with a copy button
    def page_shows_ssh():
        project_sync(allocation=instances_allocation, full=True)  # Nova lists the address a moment later
        page.goto(reverse("instances:detail", args=[instance.pk]))
        return page.get_by_test_id("ssh-command").count() == 1

    wait_for(page_shows_ssh, timeout=90, interval=2, message="the ssh command on the instance page")
    assert page.get_by_test_id("ssh-command").inner_text() == f"ssh ubuntu@{address}"
    assert page.get_by_test_id("login-user").inner_text() == "ubuntu"
    page.get_by_role("button", name="Copy the ssh command").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == f"ssh ubuntu@{address}"
    assert "SU/hour now" in page.get_by_test_id("cost-now").inner_text()
    screenshot("connect")

    # the console is a page of ours: the log in a <pre>, refreshed in place, and a noVNC link
    page.get_by_role("link", name=re.compile("Console: boot log")).click()
    page.get_by_role("heading", name="Console of sshable").wait_for()
    log = page.get_by_test_id("console-log")
    assert log.evaluate("el => el.tagName") == "PRE" and log.inner_text().strip()
    before = page.locator("#console-log-title").inner_text()
    page.wait_for_timeout(1100)  # the header names the second it was read
    page.get_by_role("button", name="Refresh").click()
    page.locator("#console-log-title").filter(has_not_text=before.split("as of ")[1]).wait_for()
    assert page.get_by_test_id("novnc-link").get_attribute("href") == reverse("instances:console_vnc",
                                                                              args=[instance.pk])
    screenshot("console")

    # at 400 px wide, neither page scrolls sideways
    page.set_viewport_size({"width": 400, "height": 800})
    page.reload()
    assert document_width(page) <= 400
    screenshot("console-400px")
    page.goto(reverse("instances:detail", args=[instance.pk]))
    assert document_width(page) <= 400
    screenshot("detail-400px")
    page.set_viewport_size({"width": 1280, "height": 800})

    # delete, keeping the public IP the portal made for it (the dialog asks first)
    page.goto(reverse("instances:detail", args=[instance.pk]))
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_label(f"Keep the public IP {address}").check()
    screenshot("delete-keeping-the-ip")
    page.get_by_test_id("delete-form").get_by_role("button", name="Delete").click()
    page.get_by_role("heading", name="Instances").wait_for()
    done = wait_final(CloudAction.objects.get(action="delete", target_id=instance.server_id))
    assert done.state == "succeeded", done.error
    kept = neutron.get_ip(fip.id)
    assert kept.floating_ip_address == address and not kept.port_id


def test_resize_needs_a_chosen_flavor_and_a_confirm_step_then_confirm_keeps_it(
        page, screenshot, client, instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    instance = launched(client, instances_allocation, "grower", flavor="m3.small")
    sign_in(page, instances_allocation.pi)
    page.goto(reverse("instances:detail", args=[instance.pk]))
    select = page.get_by_label("Resize to another flavor")
    # no flavor is preselected, and the Resize button cannot send the form without one
    assert select.input_value() == ""
    page.get_by_role("button", name="Resize", exact=True).click()
    assert select.evaluate("el => el.matches(':invalid')")
    assert page.get_by_test_id("resize-confirm").count() == 0
    screenshot("resize-needs-a-flavor")
    # a chosen flavor leads to the confirm step: old -> new flavor and SU/hour; nothing is asked of Nova yet
    quad = page.locator("#id_flavor_id option", has_text="m3.quad —").get_attribute("value")
    select.select_option(quad)
    page.get_by_role("button", name="Resize", exact=True).click()
    confirm = page.get_by_test_id("resize-confirm")
    confirm.wait_for()
    assert "m3.small" in confirm.inner_text() and "m3.quad" in confirm.inner_text()
    assert page.get_by_test_id("new-rate").inner_text() == "4.00 SU/hour"
    assert not CloudAction.objects.filter(action="resize").exists()
    screenshot("resize-confirm-step")
    # Confirm: Nova resizes and asks for verification; the page offers Confirm resize / Revert resize
    confirm.get_by_role("button", name="Confirm").click()
    banner = page.get_by_test_id("verify-resize")
    banner.wait_for(timeout=120_000)
    assert CloudAction.objects.get(action="resize").params["flavor_name"] == "m3.quad"
    assert "now runs as m3.quad (it was m3.small)" in banner.inner_text()
    screenshot("resize-verify")
    banner.get_by_role("button", name="Confirm resize").click()
    page.get_by_test_id("flavor").filter(has_text="m3.quad").wait_for()
    page.locator("#instance-live:not([hx-trigger])").wait_for(timeout=60_000)
    assert page.get_by_test_id("verify-resize").count() == 0
    server = connection_get(project_id=pid).compute.get_server(instance.server_id)
    assert (server.status, server.flavor.original_name) == ("ACTIVE", "m3.quad")
    screenshot("resized")


def test_a_failed_public_ip_step_keeps_the_server_and_try_again_on_the_launch_page_gets_the_ip(
        page, screenshot, client, instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    client.force_login(instances_allocation.pi)
    # the form accepts the public IP; then the project's public IP quota drops to 0 before the server is up
    row = launch_via_form(client, instances_allocation, flavor="m3.tiny", name="stubborn", assign_floating_ip="on")
    connection_get().network.update_quota(pid, floating_ips=0)
    row = wait_final(row)
    assert (row.state, row.failed_step) == ("failed", "assigning public IP"), row.error
    sign_in(page, instances_allocation.pi)
    page.goto(reverse("instances:launch_detail", args=[row.pk]))
    assert page.get_by_test_id("failed-step").inner_text() == "assigning public IP — failed"
    assert page.get_by_test_id("launch-error").inner_text().startswith(
        "The instance is running, but assigning a public IP failed: the project has no public IPs left")
    [server] = connection_get(project_id=pid).compute.servers()
    assert server.status == "ACTIVE"
    screenshot("launch-failed-step")
    # the quota is raised again; Try again assigns the IP to the same, still running server
    connection_get().network.update_quota(pid, floating_ips=4)
    page.get_by_role("button", name="Try again").click()
    page.get_by_test_id("public-ip").wait_for(timeout=90_000)
    address = page.get_by_test_id("public-ip").inner_text()
    assert address.startswith("203.0.113.")
    assert connection_get(project_id=pid).compute.get_server(server.id).status == "ACTIVE"
    assert "went through on a second try" in page.get_by_test_id("launch-recovered").inner_text()
    assert page.get_by_role("button", name="Try again").count() == 0
    screenshot("launch-try-again-done")
