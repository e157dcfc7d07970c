"""Launch a stack from the library in Chromium, on the real devcloud (issue 13): the parameters form
Heat's reading of the template makes (groups, the hidden password), its cost, then the live page
whose events arrive while Heat works, until CREATE_COMPLETE; then delete it."""
import re
import shutil

import pytest

from stacks.models import Stack
from tests.browser.conftest import sign_in
from tests.fixtures.celery_worker import wait_for
from tests.instances.integration_support import devcloud_ready, instances_allocation, nova_servers  # noqa: F401
from tests.integration.test_stacks import heat_cleanup, seeded_templates  # noqa: F401


@pytest.fixture(scope="session")
def devcloud(devcloud_ready):  # noqa: F811
    return devcloud_ready


pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_launch_a_stack_from_the_library_and_watch_its_events(page, screenshot, instances_allocation, heat_cleanup,
                                                              celery_worker_process):
    pi = instances_allocation.pi
    page.on("dialog", lambda dialog: dialog.accept())  # delete asks first
    sign_in(page, pi)

    page.get_by_role("navigation").get_by_role("link", name="Stacks").click()
    page.get_by_role("link", name="New stack").click()
    page.get_by_label(re.compile("Two servers on a private network")).check()
    page.get_by_role("button", name="Next: parameters").click()

    # the form from Heat's reading: its groups, the defaults, the hidden password field, the cost
    for legend in ("Servers", "Network", "Secrets"):
        page.locator("legend", has_text=legend).wait_for()
    assert page.locator("#id_param-flavor option:checked").inner_text() == "m3.tiny"
    assert page.locator("#id_param-db_password").get_attribute("type") == "password"
    page.get_by_test_id("cost").filter(has_text="2 × m3.tiny").wait_for()
    page.get_by_label("Stack name").fill("pair")
    page.get_by_label("Servers", exact=True).fill("3")
    page.get_by_label("Servers", exact=True).dispatch_event("change")
    page.get_by_test_id("cost").filter(has_text="3 × m3.tiny").wait_for()
    page.get_by_label("Database password").fill("s3cretpass1")
    screenshot("parameters")
    shutil.copy(screenshot("parameters"), "/tmp/stacks-parameters.png")
    page.get_by_role("button", name="Create stack").click()

    # the live page: events arrive while Heat works, until CREATE_COMPLETE
    page.get_by_role("heading", name="Stack “pair”").wait_for()
    events = page.get_by_test_id("events").locator("li[data-event]")
    events.first.wait_for(timeout=60_000)
    first_count = events.count()
    page.locator('#stack-live[data-status="CREATE_COMPLETE"]').wait_for(timeout=300_000)
    assert events.count() > first_count, "no event arrived after the first"
    page.get_by_test_id("resources").locator('tr[data-resource="servers.2"]').wait_for()
    page.get_by_test_id("outputs").filter(has_text="addresses").wait_for()
    screenshot("complete")
    shutil.copy(screenshot("complete"), "/tmp/stacks-complete.png")
    # once the portal's own operation has seen it complete too, the page stops polling
    page.locator('#stack-live[data-status="CREATE_COMPLETE"]:not([hx-trigger])').wait_for(timeout=60_000)

    stack = Stack.objects.get(allocation=instances_allocation, name="pair")
    page.get_by_role("button", name="Delete stack").click()
    wait_for(lambda: Stack.objects.get(pk=stack.pk).deleted_at is not None, timeout=300, interval=2,
             message="the stack deleted")
    pid = instances_allocation.openstack_project_id
    wait_for(lambda: not nova_servers(pid), timeout=120, message="no server of the stack left")
