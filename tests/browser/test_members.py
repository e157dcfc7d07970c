"""Members table in Chromium: confirm dialogs quote emails as text, never run them as code."""
from types import SimpleNamespace

import pytest

from allocations.models import Membership
from tests.browser.test_allocations import sign_in
from tests.factories import UserFactory
from tests.fixtures.allocations import make_allocation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Both would end a JavaScript string written as onsubmit="return confirm('Remove {{ email }}? …')".
EMAILS = ["o'brien@example.org", "x');alert(1);//@example.org"]


@pytest.fixture
def members_page(page):
    pi = UserFactory()
    # No cloud project: removing a member then needs no Keystone call.
    allocation = make_allocation(pi=pi, project_id="", title="Protein folding")
    for n, email in enumerate(EMAILS):
        # Django's EmailValidator refuses the second address; people are made directly in the database.
        Membership.objects.create(allocation=allocation, user=UserFactory(username=f"member{n}", email=email))
    seen = SimpleNamespace(page=page, allocation=allocation, dialogs=[], errors=[], accept=False)

    def on_dialog(dialog):
        seen.dialogs.append((dialog.type, dialog.message))
        dialog.accept() if seen.accept else dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda exc: seen.errors.append(str(exc)))
    sign_in(page, pi)
    page.goto(f"/allocations/{allocation.pk}/")
    return seen


@pytest.mark.parametrize("email", EMAILS)
def test_remove_asks_with_the_email_verbatim_and_runs_no_script(members_page, screenshot, email):
    page, allocation, dialogs, errors = (members_page.page, members_page.allocation, members_page.dialogs,
                                         members_page.errors)
    row = page.get_by_role("row").filter(has_text=email)

    row.get_by_role("button", name="Remove").click()
    page.wait_for_timeout(500)  # an injected alert() would open right after the confirm

    assert dialogs == [("confirm", f"Remove {email}? They lose access to the project at once.")]
    assert errors == []
    screenshot("after-dismiss")
    # Dismissed: nothing was sent, the member is still listed and still a member.
    assert row.is_visible()
    assert allocation.memberships.filter(user__email=email).exists()


@pytest.mark.parametrize("email", EMAILS)
def test_remove_goes_ahead_when_confirmed(members_page, email):
    page, allocation = members_page.page, members_page.allocation
    members_page.accept = True
    page.get_by_role("row").filter(has_text=email).get_by_role("button", name="Remove").click()
    page.get_by_text(f"{email} was removed").wait_for()
    assert members_page.dialogs == [("confirm", f"Remove {email}? They lose access to the project at once.")]
    assert members_page.errors == []
    assert not allocation.memberships.filter(user__email=email).exists()
    assert allocation.memberships.exclude(user__email=email).count() == 2  # the PI and the other member


def test_adding_an_unverified_address_explains_it_and_keeps_what_was_typed(members_page, screenshot):
    page, allocation = members_page.page, members_page.allocation
    UserFactory(username="newcomer", email="newcomer@example.org", verified=False)

    page.get_by_label("Add a member by email").fill("newcomer@example.org")
    page.get_by_label("Role").select_option("manager")
    page.get_by_role("button", name="Add", exact=True).click()

    error = page.get_by_test_id("member-email-error")
    error.wait_for()
    assert "No portal account has verified newcomer@example.org" in error.inner_text()
    assert page.get_by_label("Add a member by email").input_value() == "newcomer@example.org"
    assert page.get_by_label("Role").input_value() == "manager"
    screenshot("unverified")
    assert not allocation.memberships.filter(user__email="newcomer@example.org").exists()
