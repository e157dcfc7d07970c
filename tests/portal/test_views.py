from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from portal import health
from portal.cloud import errors
from tests.factories import PASSWORD

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("url", ["/instances/", "/allocations/", "/admin/"])
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
    response = client.post(f"{reverse('account_login')}?next=/admin/",
                           {"login": staff_user.email, "password": PASSWORD})
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
    # Not signed in: `/` is the landing page, not a dashboard.
    home = client.get("/").content.decode()
    assert "How to get started" in home and "Signed in as" not in home


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


# --- The landing page and a dashboard that leads (issue 14) ----------------------------------


def test_an_anonymous_visitor_sees_what_the_portal_is_and_how_to_start(client):
    response = client.get("/")
    body = response.content.decode()
    assert response.status_code == 200
    for words in ["research cloud", "NVIDIA A100", "large-memory", "Volumes", "service units (SUs)",
                  "How to get started"]:
        assert words.lower() in body.lower(), words
    assert f'href="{reverse("account_signup")}"' in body and f'href="{reverse("account_login")}"' in body
    assert "Signed in as" not in body and "Recent activity" not in body


def test_the_home_page_only_answers_reads(client, user_client):
    assert client.post("/").status_code == 405
    assert user_client.post("/").status_code == 405


def test_a_new_users_dashboard_leads_to_requesting_an_allocation(user_client):
    body = user_client.get("/").content.decode()
    assert 'data-testid="get-started"' in body
    assert f'<a class="btn btn-primary" href="{reverse("allocations:request")}">Request an allocation</a>' in body
    assert user_client.get(reverse("allocations:request")).status_code == 200


def test_a_pending_request_shows_on_the_dashboard_with_its_status(user_client, user, staff_user):
    from allocations import services

    allocation = services.allocation_request(
        pi=user, title="Coastal flooding", kind="research_cpu", requested_sus=Decimal(25000),
        justification="Ensembles.", start_date=timezone.localdate(), end_date=timezone.localdate() + timedelta(days=90))
    body = user_client.get("/").content.decode()
    assert 'data-testid="get-started"' not in body  # a member of something now
    assert "Your request “Coastal flooding”" in body and "25,000 SUs" in body
    assert f"waiting for review since {timezone.localdate():%b} {timezone.localdate().day}" in body

    services.allocation_start_review(allocation=allocation, reviewer=staff_user)
    body = user_client.get("/").content.decode()
    assert "is\n    <span data-testid=\"pending-status\">under review since" in body


def test_the_award_and_the_reviewers_note_show_once_reviewed(user_client, user, staff_user):
    from allocations import services

    today = timezone.localdate()
    allocation = services.allocation_request(
        pi=user, title="Coastal flooding", kind="research_cpu", requested_sus=Decimal(25000),
        justification="Ensembles.", start_date=today, end_date=today + timedelta(days=90))
    services.allocation_approve(allocation=allocation, reviewer=staff_user, awarded_sus=Decimal(20000),
                                start_date=today, end_date=today + timedelta(days=180),
                                note="Trimmed: the last 20 runs can use the smaller flavor.")
    body = user_client.get("/").content.decode()
    assert "Your request" not in body
    assert "“Coastal flooding” was approved" in body and "20,000 SUs</span> awarded" in body
    assert "Reviewer's note: <q" in body and "Trimmed: the last 20 runs can use the smaller flavor." in body
    assert "Its cloud project is being set up" in body

    detail = user_client.get(reverse("allocations:detail", args=[allocation.pk])).content.decode()
    assert 'data-testid="review-outcome"' in detail and "Awarded 20,000 SUs" in detail
    assert "(25,000 requested)" in detail and "Trimmed: the last 20 runs" in detail


def test_a_rejection_and_its_note_show_on_the_dashboard(user_client, user, staff_user):
    from allocations import services

    today = timezone.localdate()
    allocation = services.allocation_request(
        pi=user, title="Crypto mining", kind="research_gpu", requested_sus=Decimal(900000),
        justification="Profit.", start_date=today, end_date=today + timedelta(days=90))
    services.allocation_reject(allocation=allocation, reviewer=staff_user, note="Not research.")
    body = user_client.get("/").content.decode()
    assert "“Crypto mining” was not approved" in body and "Not research." in body
    assert f'href="{reverse("allocations:request")}">Send a new request' in body


def _activity(body: str) -> list[str]:
    """The dashboard's activity items as text, in order."""
    import re
    from html import unescape

    items = re.findall(r'data-testid="activity-item".*?</li>', body, re.S)
    return [" ".join(unescape(re.sub(r"<[^>]+>", "", item.split(">", 1)[1])).split()) for item in items]


def test_recent_activity_is_in_plain_words_with_failures_first(user_client, user, allocation, staff_user):
    from instances.models import CloudAction, Instance, LaunchRequest
    from portal.models import Operation

    # given a failed volume create (older), a finished launch of three and a failed project setup
    failed = CloudAction.objects.create(
        allocation=allocation, project_id="proj-1", target_type="volume", target_name="data-1", action="create",
        requested_by=user, state="failed",
        error="The project's storage quota (1,000 GB) would be exceeded by 4,000 GB.")
    CloudAction.objects.filter(pk=failed.pk).update(created_at=timezone.now() - timedelta(hours=5))
    LaunchRequest.objects.create(allocation=allocation, project_id="proj-1", name="node", count=3,
                                 flavor_id="f-m3-small", flavor_name="m3.small", requested_by=user, state="succeeded")
    Operation.objects.create(kind="allocation.provision", target=f"allocation:{allocation.pk}", state="failed",
                             requested_by=staff_user, error="Keystone refused to create the project.")
    server = Instance.objects.create(allocation=allocation, project_id="proj-1", server_id="srv-9", name="web-1",
                                     status="SHUTOFF")
    CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_id="srv-9", target_name="web-1",
                               action="floating_ip_assign", requested_by=user, state="succeeded")

    body = user_client.get("/").content.decode()
    items = _activity(body)
    # failures first (newest first), then everything else newest first
    assert items[0].startswith("Failed Setting up the project for “Protein folding” failed: Keystone refused")
    assert items[1].startswith("Failed Creating volume data-1 failed: the project's storage quota (1,000 GB) "
                               "would be exceeded by 4,000 GB.")
    assert any(i.startswith("Done Assigned a public IP to instance web-1") for i in items)
    assert any(i.startswith("Done Launched 3 × m3.small (node-1…node-3)") for i in items)
    assert f'href="{reverse("instances:detail", args=[server.pk])}"' in body
    assert f'href="{reverse("allocations:detail", args=[allocation.pk])}"' in body
    for internal in ["allocation.provision", f"allocation:{allocation.pk}", "floating_ip_assign", "Floatingipassign"]:
        assert internal not in body


def test_a_dismissed_failure_leaves_the_dashboard(user_client, user, allocation):
    from instances.models import CloudAction

    row = CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_type="volume",
                                     target_name="data-1", action="create", requested_by=user, state="failed",
                                     error="Quota.")
    assert "Creating volume data-1 failed" in user_client.get("/").content.decode()
    CloudAction.objects.filter(pk=row.pk).update(dismissed_at=timezone.now())
    assert "data-1" not in user_client.get("/").content.decode()


def test_a_launch_that_kept_its_servers_says_so(user_client, user, allocation):
    from instances.models import LaunchRequest

    LaunchRequest.objects.create(
        allocation=allocation, project_id="proj-1", name="gpu-box", count=1, flavor_id="f-g3-small",
        flavor_name="g3.small", requested_by=user, state="failed", failed_step="floating_ip",
        error="The instance is running, but assigning a public IP failed: the external network is not reachable.")
    items = _activity(user_client.get("/").content.decode())
    assert items[0].startswith("Failed Launched 1 × g3.small (gpu-box), but one step failed: the instance is running, "
                               "but assigning a public IP failed")


def test_activity_shows_only_ones_own_allocations(client, user, allocation):
    from instances.models import CloudAction
    from tests.fixtures.allocations import make_allocation

    theirs = make_allocation(project_id="proj-2", title="Someone else's")
    CloudAction.objects.create(allocation=theirs, project_id="proj-2", target_type="volume",
                               target_name="their-secret-volume", action="create", requested_by=theirs.pi,
                               state="failed", error="Quota.")
    client.force_login(user)
    body = client.get("/").content.decode()
    assert "their-secret-volume" not in body and "Someone else" not in body


def test_the_menu_has_a_network_section_and_a_skip_link_comes_first(user_client):
    body = user_client.get("/").content.decode()
    first_link = body[body.index("<body"):].split("<a ", 1)[1]
    assert first_link.startswith('class="skip-link') and 'href="#content">Skip to content</a>' in first_link
    assert 'id="content"' in body
    menu = body[body.index('data-testid="network-menu"'):]
    menu = menu[:menu.index("</li>\n            </ul>")]
    for label, name in [("SSH keys", "instances:keys"), ("Security groups", "instances:security_groups"),
                        ("Public IPs", "instances:floating_ips")]:
        assert f'href="{reverse(name)}"' in menu and label in menu


def test_the_credentials_form_explains_a_bad_name_in_words(user_client, allocation):
    response = user_client.post(reverse("allocations:credentials"),
                                {"allocation": allocation.pk, "name": "my laptop!", "expires_in_days": 30})
    body = response.content.decode()
    assert "Use letters, digits, - and _ only (no spaces)" in body
    assert "slug" not in body.lower()
    assert 'value="my laptop!"' in body


def test_a_failed_volume_create_can_be_dismissed_from_the_dashboard(user_client, user, allocation):
    from instances.models import CloudAction

    row = CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_type="volume",
                                     target_name="data-1", action="create", requested_by=user, state="failed",
                                     error="Quota.")
    body = user_client.get("/").content.decode()
    dismiss = reverse("instances:volume_action_dismiss", args=[row.pk])
    assert f'action="{dismiss}"' in body
    response = user_client.post(dismiss, {"next": "/"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert "data-1" not in user_client.get("/").content.decode()


@pytest.mark.parametrize("status,task_state,words", [
    ("VERIFY_RESIZE", "", "resized: confirm or revert"), ("BUILD", "spawning", "building (spawning)"),
    ("ACTIVE", "resize_prep", "active (resize prep)"), ("SHELVED_OFFLOADED", "", "shelved"),
    ("in-use", "", "in use"), ("error_extending", "", "error (extending failed)"), ("SHUTOFF", "", "shutoff"),
])
def test_status_badges_speak_words_not_internal_names(status, task_state, words):
    import re

    from django.template import engines

    html = engines["django"].from_string("{% load portal_words %}{% status_badge status task_state %}").render(
        {"status": status, "task_state": task_state})
    assert " ".join(re.sub(r"<[^>]+>", "", html).split()) == words


@pytest.mark.parametrize("status,task_state,colour,spinner", [
    ("ACTIVE", "", "success", False), ("ACTIVE", "rebooting", "success", True), ("BUILD", "", "warning", True),
    ("ERROR", "", "danger", False), ("error_extending", "", "danger", False), ("SHUTOFF", "", "secondary", False),
    ("PAUSED", "", "secondary", False), ("failed", "", "danger", False), ("creating", "", "warning", True),
])
def test_status_badges_colour_settled_states_and_spin_only_while_changing(status, task_state, colour, spinner):
    from django.template import engines

    html = engines["django"].from_string("{% load portal_words %}{% status_badge status task_state %}").render(
        {"status": status, "task_state": task_state})
    assert f"text-bg-{colour}" in html
    assert ("spinner-border" in html) is spinner
