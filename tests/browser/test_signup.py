import re

import pytest
from django.core import mail

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_newcomer_signs_up_verifies_signs_in_and_sees_the_dashboard(page, screenshot):
    # Given a visitor on the portal's landing page (issue 14: `/` says what the portal is)
    page.goto("/")
    page.get_by_role("link", name=re.compile("sign up", re.I)).first.click()

    # When they sign up
    page.get_by_label("Email").fill("ada@university.example")
    page.get_by_label("Password", exact=True).fill("analytical-engine-1843")
    page.get_by_label(re.compile("Password \\(again\\)")).fill("analytical-engine-1843")
    page.get_by_role("button", name=re.compile("sign up", re.I)).click()
    page.get_by_text(re.compile("verify your email", re.I)).first.wait_for()
    screenshot("verification-sent")

    # and follow the link in the email they were sent
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[0].body).group(0)
    page.goto(link)
    page.get_by_role("button", name=re.compile("confirm", re.I)).click()

    # Then they are signed in; signing out and in again lands on the dashboard
    page.get_by_test_id("user-menu").click()
    page.get_by_role("button", name="Sign out").click()
    page.goto("/accounts/login/")
    page.get_by_label("Email").fill("ada@university.example")
    page.get_by_label("Password").fill("analytical-engine-1843")
    page.get_by_role("button", name=re.compile("sign in", re.I)).click()

    page.get_by_role("heading", name="Dashboard").wait_for()
    assert page.get_by_text("Signed in as ada@university.example").is_visible()
    nav = page.get_by_role("navigation")
    for section in ["Instances", "Volumes", "Clusters", "Classes", "Allocations", "Credentials"]:
        assert nav.get_by_text(section, exact=True).is_visible()
    screenshot("dashboard")
