"""Members in Chromium: confirm dialogs quote emails as text, never run them as code; several addresses
at once with errors at the field; an invitation binds on sign-up (issue 14)."""
import re
from types import SimpleNamespace

import pytest
from django.core import mail

from allocations.models import Membership
from tests.browser.conftest import SCREENSHOTS, sign_in
from tests.factories import UserFactory
from tests.fixtures.allocations import make_allocation
from tests.instances.integration_support import devcloud_ready, instances_allocation  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="session")
def devcloud(devcloud_ready):
    return devcloud_ready


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


def test_bad_addresses_are_named_at_the_field_and_what_was_typed_stays(members_page, screenshot):
    page, allocation = members_page.page, members_page.allocation

    page.get_by_label("Add members by email").fill("ana@university.example, bob@, carla@lab")
    page.get_by_label("Role").select_option("manager")
    page.get_by_role("button", name="Add", exact=True).click()

    error = page.get_by_test_id("member-email-error")
    error.wait_for()
    assert error.inner_text().splitlines() == ["“bob@” is not an email address.",
                                               "“carla@lab” is not an email address."]
    assert page.get_by_label("Add members by email").input_value() == "ana@university.example, bob@, carla@lab"
    assert page.get_by_label("Role").input_value() == "manager"
    screenshot("bad-addresses")
    assert not allocation.invitations.exists() and allocation.memberships.count() == 3


def test_an_unverified_address_is_invited_not_added(members_page, screenshot):
    page, allocation = members_page.page, members_page.allocation
    UserFactory(username="newcomer", email="newcomer@example.org", verified=False)

    page.get_by_label("Add members by email").fill("newcomer@example.org")
    page.get_by_role("button", name="Add", exact=True).click()

    invitation = page.get_by_test_id("invitation").filter(has_text="newcomer@example.org")
    invitation.wait_for()
    assert "waiting; the link works until" in invitation.inner_text()
    screenshot("invited")
    assert not allocation.memberships.filter(user__email="newcomer@example.org").exists()

    # withdrawing asks first, then the link stops working
    members_page.accept = True
    invitation.get_by_role("button", name=re.compile("Withdraw")).click()
    page.get_by_text("The invitation to newcomer@example.org was withdrawn").wait_for()
    assert members_page.dialogs[-1] == ("confirm",
                                        "Withdraw the invitation to newcomer@example.org? Its link stops working.")
    assert allocation.invitations.get().revoked_at is not None


@pytest.mark.integration
def test_an_invitation_to_a_new_address_binds_on_sign_up_and_grants_the_project(
        chromium_browser, live_server, screenshot, page, instances_allocation, monkeypatch, request):
    """On the real devcloud: the PI invites two people at once, one has no account; they follow the
    emailed link, sign up, confirm, and are a member with a role on the project in Keystone."""
    from allocations import tasks
    from allocations.models import KeystoneIdentity
    from tests.cloud_sdk import connection_get

    # the Keystone grant runs in this process right after the commit (no worker needed)
    monkeypatch.setattr(tasks.grant_membership, "apply_async",
                        lambda args=(), **kw: tasks.grant_membership.apply(args=args, task_id=kw.get("task_id")))
    allocation = instances_allocation
    colleague = UserFactory(username="has-an-account")
    sign_in(page, allocation.pi)
    page.goto(f"/allocations/{allocation.pk}/")
    page.get_by_label("Add members by email").fill(f"{colleague.email}\nNew Student <new.student@university.example>")
    page.get_by_role("button", name="Add", exact=True).click()
    page.get_by_test_id("invitation").filter(has_text="new.student@university.example").wait_for()
    assert page.get_by_role("row").filter(has_text=colleague.email).is_visible()  # joined at once
    screenshot("pi-invited")

    # the invitee, in a browser of their own, follows the link in the mail
    invited = [m for m in mail.outbox if m.to == ["new.student@university.example"]]
    assert len(invited) == 1 and allocation.title in invited[0].subject
    link = re.search(r"https?://\S+/invitations/[\w-]+/", invited[0].body).group(0)
    context = chromium_browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    guest = context.new_page()
    try:
        guest.goto(link)
        guest.get_by_role("heading", name=f"Join “{allocation.title}”").wait_for()
        guest.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-invitation-page.png"), full_page=True)
        guest.get_by_role("link", name="Sign up with new.student@university.example").click()
        assert guest.get_by_label("Email").input_value() == "new.student@university.example"
        guest.get_by_label("Password", exact=True).fill("analytical-engine-1843")
        guest.get_by_label(re.compile("Password \\(again\\)")).fill("analytical-engine-1843")
        guest.get_by_role("button", name=re.compile("sign up", re.I)).click()
        guest.get_by_text(re.compile("verify your email", re.I)).first.wait_for()
        assert not allocation.memberships.filter(user__email="new.student@university.example").exists()

        confirm = next(m for m in mail.outbox
                       if m.to == ["new.student@university.example"] and "confirm-email" in m.body)
        guest.goto(re.search(r"https?://\S+/accounts/confirm-email/\S+/", confirm.body).group(0))
        guest.get_by_role("button", name=re.compile("confirm", re.I)).click()
        # back on the invitation's page (where sign-up started): a member now
        guest.get_by_test_id("invitation-accepted").wait_for()
        guest.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-joined.png"), full_page=True)
        guest.get_by_role("link", name="Go to your dashboard").click()
        guest.get_by_test_id("project-row").filter(has_text=allocation.title).wait_for()
        guest.screenshot(path=str(SCREENSHOTS / f"{request.node.name}-member-dashboard.png"), full_page=True)
    finally:
        context.close()

    membership = allocation.memberships.get(user__email="new.student@university.example")
    assert membership.role == "member"
    membership.refresh_from_db()
    assert membership.keystone_role_granted
    identity = KeystoneIdentity.objects.get(user=membership.user)
    roles = list(connection_get().identity.role_assignments(user_id=identity.keystone_user_id,
                                                             scope_project_id=allocation.openstack_project_id))
    assert roles, "the new member's Keystone user has a role on the project"
