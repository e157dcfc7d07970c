"""SSO email trust (portal/adapters.py), through allauth's own OpenID Connect provider code.

Each test builds the SocialLogin that allauth builds from a provider's userinfo, then runs
allauth's lookup, which is where an SSO login would land in an existing account by email.
"""
import pytest
from allauth.socialaccount.adapter import get_adapter
from django.test import RequestFactory

from portal.adapters import SocialAccountAdapter, claim_says_verified, provider_trusts_email
from tests.factories import UserFactory

PROVIDER_ID = "test-sso"

# allauth looks for provider apps in the database too.
pytestmark = pytest.mark.django_db


@pytest.fixture
def oidc_app(settings):
    def configure(**app_settings):
        settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": [{
            "provider_id": PROVIDER_ID, "name": "Test SSO", "client_id": "portal", "secret": "s",
            "settings": {"server_url": "http://127.0.0.1:9/", **app_settings},
        }]}}

    return configure


def sso_login(**userinfo):
    request = RequestFactory().get("/")
    provider = get_adapter(request).get_provider(request, PROVIDER_ID)
    claims = {"sub": "someone", "email": "bob@example.org", **userinfo}
    return provider.sociallogin_from_response(request, {"userinfo": claims})


def test_the_portal_uses_this_adapter():
    assert isinstance(get_adapter(), SocialAccountAdapter)


@pytest.mark.parametrize("value, verified", [
    (True, True), ("true", True), ("True", True),
    (False, False), ("false", False), ("False", False), (None, False), (1, False), ("yes", False),
])
def test_only_true_claims_say_verified(value, verified):
    assert claim_says_verified(value) is verified


@pytest.mark.parametrize("app_settings, trusted", [
    ({}, False), ({"trust_email": False}, False), ({"trust_email": "true"}, False),
    ({"trust_email": True}, True),
])
def test_email_trust_is_off_unless_the_provider_app_turns_it_on(oidc_app, app_settings, trusted):
    oidc_app(**app_settings)
    assert provider_trusts_email(sso_login().provider) is trusted


@pytest.mark.parametrize("claim", [True, "true"])
def test_an_untrusted_provider_s_verified_email_is_stored_unverified(oidc_app, claim):
    oidc_app()
    login = sso_login(email_verified=claim)
    assert [(a.email, a.verified) for a in login.email_addresses] == [("bob@example.org", False)]


@pytest.mark.parametrize("claim, verified", [
    (True, True), ("true", True), (False, False), ("false", False), (None, False),
])
def test_a_trusted_provider_s_email_is_verified_only_when_it_says_so(oidc_app, claim, verified):
    oidc_app(trust_email=True)
    userinfo = {} if claim is None else {"email_verified": claim}
    assert [a.verified for a in sso_login(**userinfo).email_addresses] == [verified]


def test_allauths_verified_email_setting_does_not_bypass_trust(oidc_app):
    oidc_app(verified_email=True)
    assert [a.verified for a in sso_login().email_addresses] == [False]


@pytest.mark.parametrize("trust_email, claim", [
    (False, True),  # an untrusted provider, however sure it is
    (True, False),
    (True, "false"),  # allauth alone would treat this string as verified
    (True, None),
])
def test_a_login_does_not_find_the_local_account_by_an_email_it_may_not_vouch_for(
        oidc_app, trust_email, claim):
    # Given bob's local account
    bob = UserFactory(username="bob", email="bob@example.org")
    oidc_app(trust_email=trust_email)
    userinfo = {} if claim is None else {"email_verified": claim}

    # When a login with his address is looked up
    login = sso_login(**userinfo)
    login.lookup()

    # Then it is a new person, not bob
    assert not login.is_existing
    assert login.user != bob


def test_a_trusted_verified_email_finds_the_local_account(oidc_app):
    bob = UserFactory(username="bob", email="bob@example.org")
    oidc_app(trust_email=True)

    login = sso_login(email_verified=True)
    login.lookup()

    assert login.user == bob
    assert login._did_authenticate_by_email == "bob@example.org"


def test_email_authentication_can_still_be_switched_off_for_a_trusted_provider(oidc_app):
    UserFactory(username="bob", email="bob@example.org")
    oidc_app(trust_email=True, email_authentication=False)

    login = sso_login(email_verified=True)
    login.lookup()

    assert not login.is_existing
