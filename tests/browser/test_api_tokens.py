"""The Tokens page in Chromium: a token is made and shown once (with a Copy button), works against
the live server's API, is revoked on the page, and then gets 401."""
import re

import pytest
import requests

from api.models import ApiToken
from tests.browser.conftest import sign_in  # noqa: E402
from tests.factories import UserFactory
from tests.fixtures.allocations import make_allocation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_token_is_shown_once_works_with_the_api_and_stops_when_revoked(page, live_server, screenshot):
    pi = UserFactory()
    allocation = make_allocation(pi=pi, project_id="proj-browser", title="Protein folding")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    sign_in(page, pi)

    # Make a read-write token limited to the allocation.
    page.goto("/tokens/")
    page.get_by_label("Name").fill("laptop scripts")
    page.get_by_label("Scope").select_option("write")
    page.get_by_label("Limit to one allocation").select_option(str(allocation.pk))
    page.get_by_role("button", name="Create token").click()

    # Shown once, with a Copy button that puts it on the clipboard.
    raw = page.get_by_test_id("token-value").inner_text()
    assert re.fullmatch(r"rcp_[0-9a-f]{8}_[A-Za-z0-9_-]{40,}", raw)
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == raw
    row = ApiToken.objects.get(user=pi)
    assert row.key_hash != raw and raw not in row.key_hash  # only its hash is kept
    screenshot("created")

    # A program uses it against the live server.
    api = requests.Session()
    api.headers["Authorization"] = f"Bearer {raw}"
    response = api.get(f"{live_server.url}/api/v1/allocations/", timeout=10)
    assert response.status_code == 200
    assert [(a["id"], a["title"]) for a in response.json()] == [(allocation.pk, "Protein folding")]

    # The page never shows it again, and now says when it was last used.
    page.goto("/tokens/")
    assert raw not in page.content() and page.get_by_test_id("token-value").count() == 0
    token_row = page.get_by_test_id("token-row").filter(has_text="laptop scripts")
    assert "Read and write" in token_row.inner_text() and "Protein folding" in token_row.inner_text()
    assert "never" not in token_row.inner_text()

    # Revoke it on the page (the confirm dialog accepted); the program now gets 401.
    page.once("dialog", lambda dialog: dialog.accept())
    token_row.get_by_role("button", name="Revoke").click()
    page.get_by_text("revoked; programs using it get 401").wait_for()
    assert token_row.get_by_text("revoked").is_visible()
    screenshot("revoked")
    refused = api.get(f"{live_server.url}/api/v1/allocations/", timeout=10)
    assert refused.status_code == 401 and refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["type"] == "/api/problems/unauthenticated"
