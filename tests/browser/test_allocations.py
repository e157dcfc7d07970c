import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.utils import timezone

from allocations.models import Allocation, KeystoneIdentity, LedgerEntry
from portal import crypto
from tests.browser.conftest import sign_in  # noqa: E402
from tests.factories import UserFactory
from tests.fixtures.allocations import make_allocation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_pi_requests_an_allocation_and_sees_it_waiting_for_review(page, screenshot):
    pi = UserFactory()
    sign_in(page, pi)
    page.get_by_role("navigation").get_by_text("Allocations", exact=True).click()
    page.get_by_role("link", name="Request an allocation").click()

    page.get_by_label("Title").fill("Coastal flooding ensembles")
    page.get_by_label("Kind").select_option("research_gpu")
    page.get_by_label("Service units (SUs)").fill("25000")
    page.get_by_label("End date").fill((timezone.localdate() - timedelta(days=2)).isoformat())
    page.get_by_label("Justification").fill("Twenty 100-member runs on g3.large.")
    page.get_by_role("button", name="Send request").click()

    # A bad end date is explained on the page and nothing typed is lost.
    assert page.get_by_text("The end date must be after the start date.").is_visible()
    assert page.get_by_label("Justification").input_value() == "Twenty 100-member runs on g3.large."
    page.get_by_label("End date").fill((timezone.localdate() + timedelta(days=200)).isoformat())
    page.get_by_role("button", name="Send request").click()

    page.get_by_text("waiting for an administrator's review").wait_for()
    screenshot("requested")
    assert Allocation.objects.get().status == "requested"


def test_allocation_page_shows_balance_chart_members_and_ledger(page, screenshot):
    pi = UserFactory()
    allocation = make_allocation(pi=pi, project_id="", title="Protein folding")
    now = timezone.now()
    for day in range(12):
        LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=Decimal(-96), resource_id="vm1",
                                   resource_name="folding-1", flavor="m3.quad", state="ACTIVE", su_rate=4,
                                   period_start=now - timedelta(days=day, hours=24),
                                   period_end=now - timedelta(days=day),
                                   user=pi)
    sign_in(page, pi)
    page.goto(f"/allocations/{allocation.pk}/")
    assert page.get_by_test_id("balance").inner_text() == "8,848 SUs"
    assert page.get_by_role("img", name=re.compile("Cumulative SUs")).is_visible()
    assert page.get_by_role("cell", name="folding-1").first.is_visible()
    screenshot("detail")


def test_a_new_credential_is_shown_once_and_each_file_downloads_once(page, monkeypatch, screenshot):
    pi = UserFactory()
    allocation = make_allocation(pi=pi, project_id="proj-browser", title="Protein folding")
    KeystoneIdentity.objects.get_or_create(user=pi, defaults={
        "keystone_user_id": f"ks-{pi.pk}", "keystone_username": pi.email, "encrypted_password": crypto.encrypt("x")})
    # Keystone faked at the gateway; the live server runs in this process.
    monkeypatch.setattr("portal.cloud.identity.app_credential_create",
                        lambda **kw: SimpleNamespace(id="cred-browser", name=kw["name"], secret="the-one-time-secret"))
    monkeypatch.setattr("portal.cloud.identity.cloud_endpoint_get", lambda: SimpleNamespace(
        auth_url="http://127.0.0.1:5000/v3", region_name="", interface="public", identity_api_version="3"))
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, pi)
    page.goto("/credentials/")
    page.get_by_label("Allocation (OpenStack project)").select_option(str(allocation.pk))
    page.get_by_label("Name").fill("laptop")
    page.get_by_role("button", name="Create").click()

    assert page.get_by_test_id("credential-secret").inner_text() == "the-one-time-secret"
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == "the-one-time-secret"
    screenshot("created")

    link = page.get_by_role("link", name="Download openrc.sh")
    url = link.get_attribute("href")
    with page.expect_download() as download:
        link.click()
    assert "the-one-time-secret" in Path(download.value.path()).read_text()
    assert page.request.get(url).status == 404  # used

    page.goto("/credentials/")
    assert page.get_by_test_id("credential-secret").count() == 0
    assert "the-one-time-secret" not in page.content()
