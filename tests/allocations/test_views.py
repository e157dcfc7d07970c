import re
from datetime import timedelta
from decimal import Decimal

import pytest
from allauth.account.models import EmailAddress
from django.urls import reverse
from django.utils import timezone

from allocations import credentials
from allocations.models import Allocation, ApplicationCredential, LedgerEntry, MeterCursor
from instances.models import Instance
from portal.cloud.quotas import QuotaUse
from tests.factories import UserFactory
from tests.fixtures.allocations import make_allocation

pytestmark = pytest.mark.django_db


def test_allocations_page_shows_balance_burn_rate_and_run_out_date(user_client, allocation):
    now = timezone.now()
    LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=Decimal(-700), resource_id="a",
                               resource_name="vm", period_start=now - timedelta(hours=1), period_end=now)
    body = user_client.get(reverse("allocations:list")).content.decode()
    assert "Protein folding" in body and "9,300 of 10,000 SUs" in body
    # the last day's use is the burn rate; 9,300 SUs last 13 more days, before the end date
    assert "700.0 SUs/day" in body
    assert f"{timezone.localdate() + timedelta(days=13):%b} {(timezone.localdate() + timedelta(days=13)).day}," in body


def _running(allocation, name, *, vcpus=4, flavor="m3.quad", status="ACTIVE", age=timedelta(days=2)):
    return Instance.objects.create(allocation=allocation, project_id=allocation.openstack_project_id,
                                   server_id=f"srv-{allocation.pk}-{name}", name=name, status=status,
                                   flavor_name=flavor, vcpus=vcpus, cloud_created_at=timezone.now() - age)


def test_detail_says_what_the_servers_cost_now_and_when_the_meter_last_ran(user_client, allocation):
    # given two running servers and a stopped one, metered up to 40 minutes ago
    now = timezone.now()
    for name in ("a", "b"):
        _running(allocation, name)
        MeterCursor.objects.create(allocation=allocation, resource_id=f"srv-{allocation.pk}-{name}",
                                   metered_until=now - timedelta(minutes=40))
    _running(allocation, "c", status="SHUTOFF")
    body = user_client.get(reverse("allocations:detail", args=[allocation.pk])).content.decode()
    assert "10.00 SU/hour" in body and "3 instances costing SUs" in body  # 4 + 4 + 4 × 0.5
    assert re.search(r"last metered <time [^>]+>40\sminutes ago</time>", body)
    # the hour the meter has not charged yet still counts: the burn rate is not 0
    assert "Burn rate (last 24 hours)" in body and "0.0 SUs/day" not in body
    end = allocation.end_date
    assert f"Lasts past the end date ({end:%b} {end.day}, {end.year})" in body


def test_a_tiny_burn_says_it_lasts_past_the_end_never_a_date_centuries_away(user_client, allocation):
    now = timezone.now()
    LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=Decimal("-0.01"), resource_id="a",
                               resource_name="vm", period_start=now - timedelta(hours=2),
                               period_end=now - timedelta(hours=1))
    body = user_client.get(reverse("allocations:list")).content.decode()
    assert "Lasts past the end date" in body and "at this rate" not in body


def test_nothing_running_says_not_burning_sus_now(user_client, allocation):
    _running(allocation, "parked", status="SHELVED_OFFLOADED")
    for url in (reverse("allocations:list"), reverse("allocations:detail", args=[allocation.pk])):
        body = user_client.get(url).content.decode()
        assert "Not burning SUs now" in body and "0.00 SU/hour" in body


def test_a_run_out_before_the_end_date_is_shown_as_a_date(user_client, allocation):
    _running(allocation, "huge", vcpus=128, flavor="r3.xl", age=timedelta(hours=1))  # 256 SU/h: < 2 days
    body = user_client.get(reverse("allocations:detail", args=[allocation.pk])).content.decode()
    assert "before the end date" in body and "No SUs left" not in body


def test_detail_shows_members_usage_chart_and_ledger(user_client, allocation, user):
    now = timezone.now()
    LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=Decimal(-40), resource_id="a",
                               resource_name="analysis-vm", flavor="m3.quad", state="ACTIVE", su_rate=4,
                               period_start=now - timedelta(hours=10), period_end=now, user=user)
    LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=Decimal(-2), resource_id="b",
                               resource_name="cli-vm", period_start=now - timedelta(hours=1), period_end=now)
    body = user_client.get(reverse("allocations:detail", args=[allocation.pk])).content.decode()
    assert "analysis-vm" in body and "m3.quad" in body and "<polyline" in body
    assert "outside the portal" in body and "9,958 SUs" in body


def test_quota_panel_reads_the_cloud_through_the_gateway(user_client, allocation, monkeypatch):
    monkeypatch.setattr("portal.cloud.quotas.project_quota_usage",
                        lambda scope: [QuotaUse("vCPUs", 12, 150), QuotaUse("Floating IPs", 1, 10)])
    body = user_client.get(reverse("allocations:quota", args=[allocation.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "12 of 150" in body and "Floating IPs" in body


def test_request_form_keeps_input_and_explains_bad_dates(user_client):
    today = timezone.localdate()
    response = user_client.post(reverse("allocations:request"), {
        "title": "Genomics", "kind": "research_cpu", "requested_sus": "5000", "storage_gb": "500",
        "start_date": today.isoformat(), "end_date": (today - timedelta(days=3)).isoformat(),
        "justification": "Alignments."})
    body = response.content.decode()
    assert response.status_code == 200 and "The end date must be after the start date." in body
    assert 'value="Genomics"' in body and "Alignments." in body
    assert not Allocation.objects.exists()


def test_a_title_typed_with_a_newline_is_stored_on_one_line(user_client, user):
    today = timezone.localdate()
    user_client.post(reverse("allocations:request"), {
        "title": "  Genomics\r\nBcc: everyone@example.org\t\u2028x ", "kind": "research_cpu",
        "requested_sus": "5000", "storage_gb": "500", "start_date": today.isoformat(),
        "end_date": (today + timedelta(days=90)).isoformat(), "justification": "Line one.\nLine two."})
    allocation = Allocation.objects.get()
    assert allocation.title == "Genomics Bcc: everyone@example.org x"
    assert allocation.justification == "Line one.\nLine two."  # prose keeps its lines


def test_request_form_creates_a_request_for_review(user_client, user):
    today = timezone.localdate()
    response = user_client.post(reverse("allocations:request"), {
        "title": "Genomics", "kind": "research_gpu", "requested_sus": "5000", "storage_gb": "500",
        "start_date": today.isoformat(), "end_date": (today + timedelta(days=90)).isoformat(),
        "justification": "Alignments."}, follow=True)
    allocation = Allocation.objects.get()
    assert allocation.pi == user and allocation.status == "requested"
    assert "waiting for an administrator" in response.content.decode()


def test_a_pi_adds_a_member_by_email_and_an_unknown_email_is_explained(user_client, allocation):
    # (issue 14, part D: addresses without a verified account are invited; tests/allocations/test_invitations.py)
    colleague = UserFactory(email="colleague@university.example")
    user_client.post(reverse("allocations:member_add", args=[allocation.pk]),
                     {"email": colleague.email, "role": "member"})
    assert allocation.memberships.filter(user=colleague).exists()
    response = user_client.post(reverse("allocations:member_add", args=[allocation.pk]),
                                {"email": "nobody@", "role": "manager"})
    body = response.content.decode()
    # The error sits under the field and what was typed is still there (no redirect, no toast).
    assert response.status_code == 200
    assert 'data-testid="member-email-error"' in body and "“nobody@” is not an email address." in body
    assert ">nobody@</textarea>" in body and '<option value="manager" selected>' in body


def test_an_unverified_address_does_not_make_a_member(user_client, allocation):
    # Anyone can sign up with any address; only its verified owner may be given the project.
    squatter = UserFactory(email="pi-colleague@university.example", verified=False)
    EmailAddress.objects.create(user=squatter, email=squatter.email, verified=False, primary=True)
    user_client.post(reverse("allocations:member_add", args=[allocation.pk]),
                     {"email": "PI-colleague@university.example", "role": "member"})
    assert not allocation.memberships.filter(user=squatter).exists()
    assert allocation.invitations.get().email == "PI-colleague@university.example"  # joins once verified


def test_a_plain_member_cannot_change_members(client, allocation):
    member = UserFactory()
    allocation.memberships.create(user=member, role="member")
    client.force_login(member)
    response = client.post(reverse("allocations:member_add", args=[allocation.pk]), {"email": member.email})
    assert response.status_code == 403


def test_a_non_member_gets_404_from_every_allocation_url(client, allocation):
    outsider = UserFactory()
    client.force_login(outsider)
    membership = allocation.memberships.get()
    cred = ApplicationCredential.objects.create(user=allocation.pi, allocation=allocation, keystone_id="k1", name="x")
    tokens = credentials.credential_download_tokens_issue(credential=cred, secret="s3cret")
    urls = [
        ("get", reverse("allocations:detail", args=[allocation.pk])),
        ("get", reverse("allocations:quota", args=[allocation.pk])),
        ("post", reverse("allocations:member_add", args=[allocation.pk])),
        ("post", reverse("allocations:member_remove", args=[allocation.pk, membership.pk])),
        ("get", reverse("allocations:credential_download", args=[tokens["clouds.yaml"]])),
        ("post", reverse("allocations:credential_delete", args=[cred.pk])),
    ]
    for method, url in urls:
        assert getattr(client, method)(url).status_code == 404, url
    assert "Protein folding" not in client.get(reverse("allocations:list")).content.decode()
    assert "Protein folding" not in client.get(reverse("allocations:credentials")).content.decode()


def test_list_page_query_count_does_not_grow_with_allocations(user_client, user, django_assert_max_num_queries):
    now = timezone.now()

    def busy_allocation(i):
        a = make_allocation(pi=user, project_id=f"p{i}", title=f"A{i}")
        _running(a, "vm", flavor="g3.small" if i % 2 else "m3.quad", status="SHUTOFF" if i % 3 else "ACTIVE")
        MeterCursor.objects.create(allocation=a, resource_id=f"srv-{a.pk}-vm", metered_until=now - timedelta(minutes=5))
        LedgerEntry.objects.create(allocation=a, kind="usage", sus=Decimal(-3), resource_id=f"srv-{a.pk}-vm",
                                   period_start=now - timedelta(hours=1), period_end=now - timedelta(minutes=5))

    for i in range(3):
        busy_allocation(i)
    with django_assert_max_num_queries(20) as few:
        user_client.get(reverse("allocations:list"))
    for i in range(3, 12):
        busy_allocation(i)
    with django_assert_max_num_queries(len(few.captured_queries)):
        body = user_client.get(reverse("allocations:list")).content.decode()
    assert body.count('data-testid="su-per-hour"') == 12
