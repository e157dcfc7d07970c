"""Costs that tell the truth, in Chromium: the allocation pages say what the servers cost now, when
the meter last ran, the last day's burn including what is not metered yet, and a run-out date only
when it comes before the end date."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from allocations.models import LedgerEntry, MeterCursor
from instances.models import Instance
from tests.browser.test_allocations import sign_in
from tests.factories import UserFactory
from tests.fixtures.allocations import make_allocation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def running(allocation, name, *, flavor, vcpus, status="ACTIVE", metered_ago=timedelta(minutes=40)):
    now = timezone.now()
    server_id = f"srv-{allocation.pk}-{name}"
    Instance.objects.create(allocation=allocation, project_id="", server_id=server_id, name=name, status=status,
                            flavor_name=flavor, vcpus=vcpus, cloud_created_at=now - timedelta(days=3))
    MeterCursor.objects.create(allocation=allocation, resource_id=server_id, metered_until=now - metered_ago)
    # what the meter charged of it over the day before
    rate = Decimal(vcpus) * (Decimal("0.5") if status == "SHUTOFF" else 1) * (2 if flavor.startswith("g3") else 1)
    LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=-rate * 23, resource_id=server_id,
                               resource_name=name, flavor=flavor, vcpus=vcpus, state=status, su_rate=rate,
                               period_start=now - metered_ago - timedelta(hours=23), period_end=now - metered_ago)


def test_the_allocation_pages_say_what_the_servers_cost_now_and_when_it_runs_out(page, screenshot):
    pi = UserFactory()
    # No cloud project: these pages read the ledger and the mirror only.
    steady = make_allocation(pi=pi, project_id="", title="Steady lab", sus=50000)
    running(steady, "analysis", flavor="m3.quad", vcpus=4)
    running(steady, "paused", flavor="m3.quad", vcpus=4, status="SHUTOFF")
    busy = make_allocation(pi=pi, project_id="", title="GPU sprint", sus=3000)
    running(busy, "trainer", flavor="g3.large", vcpus=16)
    make_allocation(pi=pi, project_id="", title="Quiet lab")

    sign_in(page, pi)
    page.goto("/allocations/")
    cards = {title: page.get_by_test_id("allocation-card").filter(has_text=title)
             for title in ("Steady lab", "GPU sprint", "Quiet lab")}
    assert cards["Steady lab"].get_by_test_id("su-per-hour").inner_text().startswith("6.00 SU/hour")
    assert cards["Steady lab"].get_by_test_id("runs-out").inner_text().startswith("Lasts past the end date")
    # 32 SU/h: 3,000 SUs (less what it used) last about three days, before the end date: a date
    sprint_out = cards["GPU sprint"].get_by_test_id("runs-out").inner_text()
    assert sprint_out.endswith("at this rate") and "Lasts past" not in sprint_out
    assert cards["Quiet lab"].get_by_test_id("runs-out").inner_text() == "Not burning SUs now"
    screenshot("list")

    cards["Steady lab"].get_by_role("link", name="Steady lab").click()
    assert page.get_by_test_id("su-per-hour").inner_text() == "6.00 SU/hour"
    assert page.get_by_test_id("last-metered").inner_text().replace("\xa0", " ") == "last metered 40 minutes ago"
    # 23 h metered in the day (4 + 2 SU/h) plus 40 minutes not yet metered
    assert page.get_by_test_id("burn-rate").inner_text() == "142.0 SUs/day"
    assert page.get_by_test_id("unmetered").inner_text() == "about 4.0 more used since the meter last ran"
    screenshot("detail")

    page.set_viewport_size({"width": 400, "height": 800})
    page.goto("/allocations/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    screenshot("list-400px")
