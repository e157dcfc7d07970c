"""Click through launch -> detail -> stop -> start -> delete in Chromium, on the real devcloud."""
import re

import pytest

from tests.cloud_sdk import connection_get
from tests.factories import PASSWORD
from tests.instances.integration_support import devcloud_ready, instances_allocation  # noqa: F401


@pytest.fixture(scope="session")
def devcloud(devcloud_ready):
    return devcloud_ready

pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_launch_then_stop_start_and_delete_an_instance_in_the_browser(
        page, screenshot, instances_allocation, celery_worker_process):
    pi = instances_allocation.pi
    page.on("dialog", lambda dialog: dialog.accept())  # destructive actions ask first
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill(pi.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name=re.compile("sign in", re.I)).click()
    page.get_by_role("heading", name="Dashboard").wait_for()

    # launch
    page.get_by_role("navigation").get_by_role("link", name="Instances").click()
    page.get_by_role("link", name="Launch instance").click()
    page.get_by_label("Name", exact=True).fill("clicked")
    page.get_by_label("Image", exact=True).select_option(label="Featured-Ubuntu24")
    small = page.locator("#id_flavor option", has_text="m3.small —").get_attribute("value")
    page.get_by_label("Flavor", exact=True).select_option(small)
    page.get_by_test_id("cost").filter(has_text="2.00 SU/hour").wait_for()
    screenshot("launch-form")
    page.get_by_role("button", name="Launch").click()
    page.locator('#launch-progress[data-state="succeeded"]').wait_for(timeout=120_000)
    screenshot("launched")

    # detail, stop, start
    page.get_by_role("link", name="clicked").click()
    status = page.get_by_test_id("instance-status")
    status.filter(has_text="active").wait_for()
    for action, expected in [("Stop", "shutoff"), ("Start", "active")]:
        page.get_by_role("button", name=action, exact=True).click()
        page.get_by_test_id("instance-status").filter(has_text=expected).wait_for(timeout=60_000)
        page.locator("#instance-live:not([hx-trigger])").wait_for(timeout=60_000)  # settled: polling stopped
        page.get_by_role("button", name="Delete").wait_for()  # actions are offered again once settled
    screenshot("started-again")
    server_id = page.locator("dd.font-monospace, dd.small.font-monospace").inner_text().strip()
    nova = connection_get(project_id=instances_allocation.openstack_project_id).compute
    assert nova.get_server(server_id).status == "ACTIVE"

    # delete (confirmed in the dialog)
    page.get_by_role("button", name="Delete").click()
    page.get_by_role("heading", name="Instances").wait_for()
    conn = connection_get(project_id=instances_allocation.openstack_project_id)
    from tests.fixtures.celery_worker import wait_for
    wait_for(lambda: conn.compute.find_server(server_id, ignore_missing=True) is None, timeout=60,
             message="the server to be deleted in Nova")

    def list_dropped_it():
        # the worker marks the mirror row deleted right after Nova finishes: allow it that moment
        page.reload()
        return page.get_by_text("clicked").count() == 0

    wait_for(list_dropped_it, timeout=30, interval=1, message="the instance list to drop the deleted instance")
