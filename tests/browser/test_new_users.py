"""A new user's path in Chromium (issue 14): the landing page, a dashboard that leads to an
allocation request, the request waiting for review, the award and the reviewer's note; and every
main page usable at 400 px wide (no sideways scroll of the page), on the real devcloud."""
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from allocations import services
from allocations.models import Allocation
from instances.models import Instance, Volume
from tests.browser.conftest import sign_in
from tests.factories import UserFactory
from tests.fixtures.allocations import make_allocation
from tests.instances.integration_support import devcloud_ready, instances_allocation, launch_via_form, wait_final  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NARROW = {"width": 400, "height": 860}


@pytest.fixture(scope="session")
def devcloud(devcloud_ready):
    return devcloud_ready


def page_width(page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


def test_an_anonymous_visitor_sees_what_the_portal_is(page, screenshot):
    page.goto("/")
    assert page.get_by_role("heading", level=1).inner_text().startswith("Research Cloud: cloud computers for research")
    body = page.locator("main").inner_text()
    for words in ["NVIDIA A100", "large-memory", "Volumes", "service units (SUs)", "How to get started"]:
        assert words in body, words
    screenshot("landing")
    page.locator("main").get_by_role("link", name="Sign up", exact=True).first.click()
    page.get_by_role("button", name=re.compile("sign up", re.I)).wait_for()
    assert page.url.endswith(reverse("account_signup"))


def test_the_skip_link_is_the_first_thing_a_keyboard_reaches(page):
    page.goto("/")
    page.keyboard.press("Tab")
    focused = page.evaluate("[document.activeElement.textContent, document.activeElement.getAttribute('href')]")
    assert focused == ["Skip to content", "#content"]
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "content"


CONTRAST_JS = """
(el) => {
  const rgb = (c) => c.match(/[\\d.]+/g).map(Number);
  const lum = ([r, g, b]) => [r, g, b]
    .map((v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; })
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  let node = el, bg = null;
  while (node && !bg) {  // the nearest ancestor that paints an opaque background
    const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length < 4 || c[3] === 1) { if (c.length >= 3 && !(c.length === 4 && c[3] === 0)) bg = c; }
    node = node.parentElement;
  }
  const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(bg || [255, 255, 255])].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}
"""


def test_links_have_at_least_4_5_to_1_contrast(page):
    """Bootstrap's default link blue is 4.27:1 on the light grey body; every link here must reach 4.5:1."""
    page.goto("/")
    low = {}
    for link in page.locator("main a:not(.btn)").all():
        ratio = link.evaluate(CONTRAST_JS)
        if ratio < 4.5:
            low[link.inner_text()] = round(ratio, 2)
    person = UserFactory()
    allocation = make_allocation(pi=person, project_id="", title="Protein folding")
    sign_in(page, person)
    page.goto(reverse("allocations:detail", args=[allocation.pk]))  # a breadcrumb on the grey body
    for link in page.locator("main a:not(.btn)").all():
        ratio = link.evaluate(CONTRAST_JS)
        if ratio < 4.5:
            low[link.inner_text()] = round(ratio, 2)
    assert not low, f"links below 4.5:1 contrast: {low}"


def test_a_new_user_requests_an_allocation_from_the_dashboard_and_follows_it(page, screenshot, monkeypatch):
    # Provisioning is not what this test is about: the approval's task is not sent.
    monkeypatch.setattr("allocations.tasks.provision_allocation.apply_async", lambda *a, **k: None)
    person, reviewer = UserFactory(), UserFactory(username="reviewer", is_staff=True)
    sign_in(page, person)

    # the dashboard leads: a clear button to request an allocation
    start = page.get_by_test_id("get-started")
    assert "your work runs in an allocation" in start.inner_text()
    screenshot("new-dashboard")
    start.get_by_role("link", name="Request an allocation").click()
    page.get_by_role("heading", name="Request an allocation").wait_for()

    page.get_by_label("Title").fill("Coastal flooding ensembles")
    page.get_by_label("Kind").select_option("research_cpu")
    page.get_by_label("Service units (SUs)").fill("25000")
    page.get_by_label("Justification").fill("Twenty 100-member runs on m3.large.")
    page.get_by_role("button", name="Send request").click()
    page.get_by_text("waiting for an administrator's review").wait_for()

    # back on the dashboard: the pending request and its status
    page.get_by_role("navigation").get_by_role("link", name="Dashboard").click()
    pending = page.get_by_test_id("pending-request")
    assert "Your request “Coastal flooding ensembles” for 25,000 SUs" in pending.inner_text()
    today = timezone.localdate()
    assert (pending.get_by_test_id("pending-status").inner_text()
            == f"waiting for review since {today:%b} {today.day}, {today:%Y}")
    assert page.get_by_test_id("get-started").count() == 0
    screenshot("pending")

    # an administrator approves it with a note
    allocation = Allocation.objects.get()
    services.allocation_start_review(allocation=allocation, reviewer=reviewer)
    page.reload()
    assert page.get_by_test_id("pending-status").inner_text().startswith("under review since")
    services.allocation_approve(allocation=allocation, reviewer=reviewer, awarded_sus=Decimal(20000),
                                start_date=today, end_date=today + timedelta(days=180),
                                note="Awarded 20,000: the last runs fit m3.medium.")
    page.reload()
    outcome = page.get_by_test_id("review-outcome")
    assert "“Coastal flooding ensembles” was approved" in outcome.inner_text()
    assert outcome.get_by_test_id("award").inner_text() == "20,000 SUs"
    assert "Reviewer's note: Awarded 20,000: the last runs fit m3.medium." in outcome.inner_text()
    assert page.get_by_test_id("pending-request").count() == 0
    screenshot("approved")

    # and the allocation's page keeps the award and the note
    outcome.get_by_role("link", name="Open Coastal flooding ensembles").click()
    assert "Reviewer's note" in page.get_by_test_id("review-outcome").inner_text()
    assert "the last runs fit m3.medium" in page.get_by_test_id("review-outcome").inner_text()


def test_the_network_menu_leads_to_keys_groups_and_public_ips(page):
    sign_in(page, UserFactory())
    nav = page.get_by_role("navigation")
    for label, heading in [("SSH keys", "SSH keys"), ("Security groups", "Security groups"),
                           ("Public IPs", "Public IPs")]:
        nav.get_by_role("button", name="Network").or_(nav.get_by_role("link", name="Network")).click()
        nav.get_by_role("link", name=label).click()
        page.get_by_role("heading", name=re.compile(heading, re.I)).first.wait_for()


@pytest.mark.integration
def test_every_main_page_fits_400_pixels(page, screenshot, instances_allocation, celery_worker_process):
    allocation = instances_allocation
    pi = allocation.pi
    # a real instance and a volume, so the lists and the instance page have rows
    client = Client()
    client.force_login(pi)
    launch = wait_final(launch_via_form(client, allocation, name="narrow-screen-test-instance", flavor="m3.small"))
    assert launch.state == "succeeded", launch.error
    instance = Instance.objects.get(launch_request=launch)
    client.post(f"{reverse('instances:volume_create')}?project={allocation.pk}",
                {"project": allocation.pk, "name": "narrow-screen-data-volume", "size_gb": 1})
    from tests.fixtures.celery_worker import wait_for
    wait_for(lambda: Volume.objects.filter(name="narrow-screen-data-volume", status="available").exists(),
             timeout=90, message="the volume to be created")
    colleague = UserFactory(username="a-colleague-with-a-rather-long-address")
    allocation.memberships.create(user=colleague, role="member")

    page.set_viewport_size(NARROW)
    page.goto("/")
    too_wide = {}
    if page_width(page) > NARROW["width"]:
        too_wide["landing"] = page_width(page)
    screenshot("400-landing")

    sign_in(page, pi)
    project = f"?project={allocation.pk}"
    pages = {
        "dashboard": "/",
        "instances": reverse("instances:list") + project,
        "instance": reverse("instances:detail", args=[instance.pk]),
        "launch": reverse("instances:launch") + project,
        "volumes": reverse("instances:volumes") + project,
        "volume-create": reverse("instances:volume_create") + project,
        "keys": reverse("instances:keys"),
        "security-groups": reverse("instances:security_groups") + project,
        "public-ips": reverse("instances:floating_ips") + project,
        "allocations": reverse("allocations:list"),
        "allocation": reverse("allocations:detail", args=[allocation.pk]),
        "credentials": reverse("allocations:credentials"),
        "request": reverse("allocations:request"),
    }
    for name, path in pages.items():
        page.goto(path)
        page.wait_for_load_state("networkidle")
        width = page_width(page)
        if width > NARROW["width"]:
            too_wide[name] = width
        screenshot(f"400-{name}")
    assert not too_wide, f"pages wider than {NARROW['width']} px (the page scrolls sideways): {too_wide}"

    # the members table is stacked: each cell says what it is
    page.goto(pages["allocation"])
    row = page.get_by_role("row").filter(has_text=colleague.email)
    assert row.locator("td[data-label='Role']").is_visible()
