"""Single sign-on through a real OpenID Connect provider, in Chromium.

The provider (tests/sso/provider.js) makes up accounts from the login name: "verified-alice" is
alice@example.org with email_verified true, "unverified-bob" is bob@example.org with false.
"""
import re

import pytest
from allauth.account.models import EmailAddress
from allauth.socialaccount.models import SocialAccount
from django.contrib.auth import get_user_model
from django.core import mail

from tests.factories import PASSWORD, UserFactory
from tests.sso.fixtures import PROVIDER_NAME, oidc_provider, use_sso  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def bob(db):
    """A local account, signed up with a password and a confirmed email."""
    return UserFactory(username="bob", email="bob@example.org")


def sign_in_with_sso(page, login: str) -> None:
    page.goto("/accounts/login/")
    page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").click()
    # allauth asks before sending the browser away (a GET alone never starts a login).
    page.get_by_role("button", name=re.compile("continue", re.I)).click()
    # The provider's own sign-in form, on 127.0.0.1:<its port>; it takes any password.
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name=re.compile("sign-in", re.I)).click()


def assert_signed_out(page) -> None:
    page.goto("/allocations/")  # (`/` is a landing page for visitors now, issue 14)
    assert "/accounts/login/" in page.url


def assert_bob_untouched(bob) -> None:
    bob.refresh_from_db()
    assert not SocialAccount.objects.filter(user=bob).exists()
    assert bob.check_password(PASSWORD)
    assert list(EmailAddress.objects.filter(user=bob).values_list("email", "verified")) == [
        ("bob@example.org", True)]


def test_a_newcomer_from_a_trusted_provider_lands_signed_in_with_a_verified_email(page, use_sso, screenshot):
    # Given a provider trusted for email
    use_sso(trust_email=True)

    # When a newcomer whose email it verified signs in with it
    sign_in_with_sso(page, "verified-alice")

    # Then they land on the dashboard, their email verified without a mail from us
    page.get_by_role("heading", name="Dashboard").wait_for()
    assert page.get_by_text("Signed in as alice@example.org").is_visible()
    screenshot("dashboard")
    alice = get_user_model().objects.get(email="alice@example.org")
    assert SocialAccount.objects.get(user=alice).uid == "verified-alice"
    assert EmailAddress.objects.get(user=alice).verified
    assert mail.outbox == []


def test_a_newcomer_from_an_untrusted_provider_confirms_their_email_by_mail(page, use_sso, screenshot):
    # Given a provider not trusted for email (the default)
    use_sso(trust_email=False)

    # When a newcomer signs in with it, even with an email the provider calls verified
    sign_in_with_sso(page, "verified-carol")

    # Then they are asked to confirm it like a local signup
    page.get_by_text(re.compile("verify your email", re.I)).first.wait_for()
    screenshot("verification-sent")
    carol = get_user_model().objects.get(email="carol@example.org")
    assert not EmailAddress.objects.get(user=carol).verified
    assert_signed_out(page)

    # and the link in the mail signs them in
    assert len(mail.outbox) == 1
    link = re.search(r"https?://\S+/accounts/confirm-email/\S+/", mail.outbox[0].body).group(0)
    page.goto(link)
    page.get_by_role("button", name=re.compile("confirm", re.I)).click()
    page.get_by_role("heading", name="Dashboard").wait_for()
    assert page.get_by_text("Signed in as carol@example.org").is_visible()
    assert EmailAddress.objects.get(user=carol).verified


def test_an_unverified_provider_email_does_not_take_over_the_local_account(page, use_sso, bob, screenshot):
    # Given bob's local account and a provider trusted for email
    use_sso(trust_email=True)

    # When someone signs in there with bob's address, which the provider has not verified
    sign_in_with_sso(page, "unverified-bob")

    # Then they are not signed in as bob: allauth answers as for a signup with a taken email
    page.get_by_text(re.compile("verify your email", re.I)).first.wait_for()
    screenshot("not-bob")
    assert_signed_out(page)
    assert_bob_untouched(bob)
    assert not SocialAccount.objects.filter(uid="unverified-bob").exists()
    # and the only mail goes to bob, telling him someone tried
    assert [m.to for m in mail.outbox] == [["bob@example.org"]]
    assert "already" in mail.outbox[0].body.lower()


def test_an_untrusted_provider_does_not_take_over_the_local_account_even_with_a_verified_email(
        page, use_sso, bob, screenshot):
    # Given bob's local account and a provider not trusted for email
    use_sso(trust_email=False)

    # When someone signs in there with bob's address, which the provider says it verified
    sign_in_with_sso(page, "verified-bob")

    # Then they are not signed in as bob either
    page.get_by_text(re.compile("verify your email", re.I)).first.wait_for()
    screenshot("not-bob")
    assert_signed_out(page)
    assert_bob_untouched(bob)
    assert not SocialAccount.objects.filter(uid="verified-bob").exists()


def test_a_trusted_verified_email_signs_in_to_the_local_account_and_connects_it(page, use_sso, bob, screenshot):
    # Given bob's local account and a provider trusted for email
    use_sso(trust_email=True)

    # When bob signs in there with the address the provider verified
    sign_in_with_sso(page, "verified-bob")

    # Then he is in his own account, now connected to the provider
    page.get_by_role("heading", name="Dashboard").wait_for()
    assert page.get_by_text("Signed in as bob@example.org").is_visible()
    screenshot("bob")
    assert SocialAccount.objects.get(uid="verified-bob").user == bob
    assert get_user_model().objects.filter(email="bob@example.org").count() == 1
