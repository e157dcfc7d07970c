import pytest
from django.urls import reverse

from portal.cloud import errors

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


def test_admin_opens_for_staff(client, staff_user):
    client.force_login(staff_user)
    assert client.get("/admin/").status_code == 200


def test_healthz_is_ok_when_database_redis_and_cloud_answer(client, monkeypatch):
    monkeypatch.setattr("portal.cloud.compute.compute_ping", lambda **kw: "2.96")
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"database": "ok", "redis": "ok", "cloud": "ok", "status": "ok"}


def test_healthz_names_the_cloud_when_it_does_not_answer(client, monkeypatch):
    def down(**kw):
        raise errors.CloudUnavailable()

    monkeypatch.setattr("portal.cloud.compute.compute_ping", down)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["cloud"].startswith("cloud: The cloud is not answering")
    assert response.json()["database"] == "ok"


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
