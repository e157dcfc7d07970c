import pytest
from django.core.cache import cache
from django.urls import reverse

from portal import health
from portal.cloud import errors
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/", "/admin/"])
def test_pages_send_anonymous_visitors_to_sign_in(client, url):
    response = client.get(url)
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_dashboard_greets_a_signed_in_user_with_navigation(user_client, user):
    response = user_client.get("/")
    body = response.content.decode()
    assert response.status_code == 200
    assert user.email in body
    for section in ["Dashboard", "Instances", "Volumes", "Clusters", "Classes", "Allocations", "Credentials"]:
        assert section in body
    assert "htmx-2.0.11.min.js" in body and "X-CSRFToken" in body


def test_admin_refuses_a_user_who_is_not_staff(user_client):
    response = user_client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert user_client.get(response["Location"]).status_code == 403


def test_admin_opens_for_staff(client, staff_user):
    client.force_login(staff_user)
    assert client.get("/admin/").status_code == 200


def test_admin_login_page_sends_visitors_to_the_portal_sign_in(client):
    response = client.get("/admin/login/?next=/admin/")
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('account_login')}?next=%2Fadmin%2F"


def test_admin_login_does_not_take_a_password_itself(client, staff_user):
    response = client.post("/admin/login/", {"username": staff_user.username, "password": PASSWORD,
                                             "next": "/admin/"})
    assert response.status_code == 302 and response["Location"].startswith(reverse("account_login"))
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def test_staff_sign_in_through_the_portal_and_reach_admin(client, staff_user):
    response = client.post(f"{reverse('account_login')}?next=/admin/",
                           {"login": staff_user.email, "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200


def test_repeated_wrong_passwords_are_rate_limited_even_for_the_right_one(client, staff_user):
    # given someone guessing an admin's password (allauth's login_failed limit, whatever its numbers)
    for attempt in range(1, 31):
        response = client.post(reverse("account_login"), {"login": staff_user.email, "password": f"guess-{attempt}"})
        if "Too many failed login attempts" in response.content.decode():
            break
    else:
        pytest.fail("30 wrong passwords in a row were never rate-limited")
    assert attempt <= 11

    # when the right password comes next, it is refused too, and nothing signed in
    response = client.post(f"{reverse('account_login')}?next=/admin/", {"login": staff_user.email, "password": PASSWORD})
    assert "Too many failed login attempts" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def test_healthz_is_ok_when_database_redis_and_cloud_answer(client, monkeypatch):
    monkeypatch.setattr("portal.cloud.compute.compute_ping", lambda **kw: "2.96")
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "redis": "ok", "cloud": "ok", "status": "ok", "failing": []}


def test_healthz_names_the_cloud_when_it_does_not_answer_but_never_says_why(client, monkeypatch):
    def down(**kw):
        raise errors.CloudError("Keystone at https://keystone.internal:5000 refused user portal-admin")

    monkeypatch.setattr("portal.cloud.compute.compute_ping", down)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {"database": "ok", "redis": "ok", "cloud": "failing", "status": "unhealthy",
                               "failing": ["cloud"]}
    assert "keystone" not in response.content.decode().lower()


def test_healthz_hides_unexpected_errors_too(client, monkeypatch):
    def broken(**kw):
        raise FileNotFoundError("/etc/openstack/clouds.yaml")

    monkeypatch.setattr("portal.cloud.compute.compute_ping", broken)
    response = client.get("/healthz")
    assert response.status_code == 503 and "clouds.yaml" not in response.content.decode()


def test_healthz_asks_the_cloud_at_most_once_every_few_seconds(client, monkeypatch):
    calls = []

    def ping(**kw):
        calls.append(kw)
        return "2.96"

    monkeypatch.setattr("portal.cloud.compute.compute_ping", ping)
    for _ in range(20):
        assert client.get("/healthz").status_code == 200
    assert calls == [{"timeout": 5}]

    cache.delete(health.CLOUD_CACHE_KEY)  # as when the few seconds are up
    client.get("/healthz")
    assert len(calls) == 2


def test_healthz_remembers_a_failing_cloud_for_those_seconds_too(client, monkeypatch):
    calls = []

    def down(**kw):
        calls.append(kw)
        raise errors.CloudUnavailable()

    monkeypatch.setattr("portal.cloud.compute.compute_ping", down)
    assert [client.get("/healthz").status_code for _ in range(5)] == [503] * 5
    assert len(calls) == 1


def test_signup_sends_a_verification_email_and_blocks_login_until_verified(client, mailoutbox):
    response = client.post(reverse("account_signup"), {
        "email": "new.researcher@university.example",
        "password1": "a-long-enough-passphrase", "password2": "a-long-enough-passphrase",
    })
    assert response.status_code == 302
    assert len(mailoutbox) == 1
    assert "confirm-email" in mailoutbox[0].body

    client.logout()
    response = client.post(reverse("account_login"), {
        "login": "new.researcher@university.example", "password": "a-long-enough-passphrase",
    })
    assert "confirm-email" in response["Location"] or "verification" in response.content.decode().lower()
    assert client.get("/").status_code == 302


def test_signup_form_explains_a_mismatched_password(client):
    response = client.post(reverse("account_signup"), {
        "email": "x@university.example", "password1": "a-long-enough-passphrase", "password2": "different-one-here",
    })
    assert response.status_code == 200
    assert "You must type the same password each time" in response.content.decode()


def test_password_reset_mails_a_link(client, user, mailoutbox):
    response = client.post(reverse("account_reset_password"), {"email": user.email})
    assert response.status_code == 302
    assert len(mailoutbox) == 1 and "/accounts/password/reset/key/" in mailoutbox[0].body


def test_login_page_offers_the_configured_sso_provider(client, settings):
    settings.SOCIALACCOUNT_PROVIDERS = {"openid_connect": {"APPS": [{
        "provider_id": "cilogon", "name": "CILogon", "client_id": "portal", "secret": "s",
        "settings": {"server_url": "https://sso.example.org"},
    }]}}
    body = client.get(reverse("account_login")).content.decode()
    assert "Sign in with CILogon" in body
