import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils import timezone

from allocations import provisioning
from allocations.models import Allocation
from tests.factories import UserFactory
from tests.fixtures.allocations import make_allocation

pytestmark = pytest.mark.django_db
CHANGELIST = "admin:allocations_allocation_changelist"


@pytest.fixture
def requested(user):
    return make_allocation(pi=user, status="requested", project_id="", sus=0, title="Seismic imaging")


def test_admin_lists_filters_and_searches_requests(client, staff_user, requested):
    client.force_login(staff_user)
    body = client.get(reverse(CHANGELIST), {"status__exact": "requested", "q": "seismic"}).content.decode()
    assert "Seismic imaging" in body and "Approve" in body and "Reject" in body


def test_admin_approve_asks_for_the_award_then_approves(client, staff_user, requested,
                                                       django_capture_on_commit_callbacks):
    client.force_login(staff_user)
    page = client.post(reverse(CHANGELIST), {"action": "approve", "_selected_action": [requested.pk]})
    assert page.status_code == 200 and "Awarded SUs" in page.content.decode()
    today = timezone.localdate()
    with django_capture_on_commit_callbacks(execute=False) as queued:
        client.post(reverse(CHANGELIST), {
            "action": "approve", "_selected_action": [requested.pk], "apply": "Approve", "awarded_sus": "7500",
            "start_date": today.isoformat(), "end_date": (today + timedelta(days=90)).isoformat()})
    requested.refresh_from_db()
    assert requested.status == "approved" and requested.awarded_sus == 7500 and requested.reviewer == staff_user
    assert len(queued) == 1  # the provisioning task, sent once the transaction commits


def test_admin_reject_without_a_note_keeps_the_form_with_an_error(client, staff_user, requested):
    client.force_login(staff_user)
    page = client.post(reverse(CHANGELIST), {"action": "reject", "_selected_action": [requested.pk],
                                             "apply": "Reject", "note": ""})
    assert "This field is required" in page.content.decode()
    assert Allocation.objects.get(pk=requested.pk).status == "requested"


def test_the_ledger_cannot_be_edited_in_admin(client, staff_user, allocation):
    client.force_login(staff_user)
    entry = allocation.ledger.get()
    response = client.post(reverse("admin:allocations_ledgerentry_change", args=[entry.pk]), {"sus": "999999"})
    assert response.status_code == 403


def staff_with(*codenames, username):
    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label__in=["allocations", "instances"],
                                                         codename__in=codenames))
    return user


@pytest.fixture
def viewer(db):
    return staff_with("view_allocation", "view_ledgerentry", username="viewer")


@pytest.fixture
def reviewer(db):
    return staff_with("view_allocation", "review_allocation", username="reviewer")


def approve_data(allocation, **extra):
    today = timezone.localdate()
    return {"action": "approve", "_selected_action": [allocation.pk], "apply": "Approve", "awarded_sus": "7500",
            "start_date": today.isoformat(), "end_date": (today + timedelta(days=90)).isoformat(), **extra}


REVIEW_ACTIONS = ["approve", "reject", "extend", "add_sus", "close", "retry_provisioning"]


def test_view_only_staff_see_no_review_action_and_posting_one_does_nothing(client, viewer, requested, allocation):
    client.force_login(viewer)
    body = client.get(reverse(CHANGELIST)).content.decode()
    assert "Seismic imaging" in body
    for action in REVIEW_ACTIONS:
        assert f'value="{action}"' not in body
    for action in REVIEW_ACTIONS:
        # The action form is never shown, and sending it filled in changes nothing.
        page = client.post(reverse(CHANGELIST), {"action": action, "_selected_action": [requested.pk]})
        assert 'name="apply"' not in page.content.decode()
    client.post(reverse(CHANGELIST), approve_data(requested))
    client.post(reverse(CHANGELIST), {"action": "add_sus", "_selected_action": [allocation.pk], "apply": "Add SUs",
                                      "sus": "999999", "key": "k" * 32})
    client.post(reverse(CHANGELIST), {"action": "close", "_selected_action": [allocation.pk], "apply": "Close"})
    requested.refresh_from_db()
    allocation.refresh_from_db()
    assert requested.status == "requested" and requested.balance() == 0 and requested.reviewer is None
    assert allocation.status == "active" and allocation.balance() == 10000


def test_view_only_staff_cannot_change_an_allocation(client, viewer, requested):
    client.force_login(viewer)
    url = reverse("admin:allocations_allocation_change", args=[requested.pk])
    page = client.get(url)
    assert page.status_code == 200 and 'name="title"' not in page.content.decode()
    response = client.post(url, {"title": "Renamed", "kind": "research_gpu", "justification": "x"})
    assert response.status_code == 403
    assert client.post(reverse("admin:allocations_allocation_delete", args=[requested.pk])).status_code == 403
    assert Allocation.objects.get(pk=requested.pk).title == "Seismic imaging"


def test_a_reviewer_holding_the_permission_can_approve(client, reviewer, requested,
                                                       django_capture_on_commit_callbacks):
    client.force_login(reviewer)
    assert 'value="approve"' in client.get(reverse(CHANGELIST)).content.decode()
    with django_capture_on_commit_callbacks(execute=False):
        client.post(reverse(CHANGELIST), approve_data(requested))
    requested.refresh_from_db()
    assert requested.status == "approved" and requested.reviewer == reviewer and requested.balance() == 7500


def test_approve_with_another_allocations_project_is_refused_on_the_form(client, reviewer, requested, allocation):
    client.force_login(reviewer)
    page = client.post(reverse(CHANGELIST), approve_data(requested, existing_project_id="proj-1", note="Go ahead."))
    body = page.content.decode()
    assert page.status_code == 200
    assert (f"Project proj-1 already belongs to allocation #{allocation.pk} “Protein folding”" in
            body.replace("&quot;", '"').replace("&#x27;", "'"))
    # What the reviewer typed is still in the form, ready to correct.
    assert 'value="proj-1"' in body and 'value="7500"' in body and "Go ahead." in body
    requested.refresh_from_db()
    assert requested.status == "requested" and requested.balance() == 0


def test_approve_with_the_portals_own_project_is_refused_on_the_form(client, reviewer, requested, monkeypatch):
    monkeypatch.setattr(provisioning, "portal_own_project_ids", lambda: {"the-admin-project"}, raising=False)
    client.force_login(reviewer)
    body = client.post(reverse(CHANGELIST), approve_data(requested, existing_project_id="the-admin-project"))
    assert "is the portal&#x27;s own project" in body.content.decode()
    assert Allocation.objects.get(pk=requested.pk).status == "requested"


def test_a_resubmitted_add_sus_form_adds_once(client, reviewer, allocation):
    client.force_login(reviewer)
    form = client.post(reverse(CHANGELIST), {"action": "add_sus", "_selected_action": [allocation.pk]})
    key = re.search(r'name="key" value="([^"]+)"', form.content.decode()).group(1)
    data = {"action": "add_sus", "_selected_action": [allocation.pk], "apply": "Add SUs", "sus": "500",
            "note": "Supplement", "key": key}
    first = client.post(reverse(CHANGELIST), data)
    again = client.post(reverse(CHANGELIST), data)  # the browser's back button and "send again"
    assert first.status_code == 302
    assert "These SUs were already added" in again.content.decode()
    assert allocation.balance() == 10500
    # A new form has a new key and adds again.
    fresh = client.post(reverse(CHANGELIST), {"action": "add_sus", "_selected_action": [allocation.pk]})
    assert re.search(r'name="key" value="([^"]+)"', fresh.content.decode()).group(1) != key


def test_add_sus_without_its_key_is_refused(client, reviewer, allocation):
    client.force_login(reviewer)
    page = client.post(reverse(CHANGELIST), {"action": "add_sus", "_selected_action": [allocation.pk],
                                             "apply": "Add SUs", "sus": "500"})
    assert "This form has expired" in page.content.decode() and allocation.balance() == 10000


def test_an_edited_title_is_stored_on_one_line(client, staff_user, requested):
    client.force_login(staff_user)
    url = reverse("admin:allocations_allocation_change", args=[requested.pk])
    response = client.post(url, {"title": "Seismic\r\nimaging\x1b", "kind": "research_cpu",
                                 "justification": "Science.", "storage_gb": "1000", "decision_note": "",
                                 "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "1",
                                 "memberships-0-id": requested.memberships.get().pk,
                                 "memberships-0-allocation": requested.pk, "memberships-0-role": "pi"})
    assert response.status_code == 302, response.content.decode()[:3000]
    assert Allocation.objects.get(pk=requested.pk).title == "Seismic imaging"


def test_review_fields_are_read_only_without_the_review_permission(client, requested):
    editor = staff_with("view_allocation", "change_allocation", username="editor")
    client.force_login(editor)
    body = client.get(reverse("admin:allocations_allocation_change", args=[requested.pk])).content.decode()
    assert 'name="title"' in body and 'name="justification"' in body
    for field in ("kind", "storage_gb", "decision_note", "awarded_sus", "start_date", "end_date", "pi"):
        assert f'name="{field}"' not in body


@pytest.mark.parametrize("model", ["instance", "volume", "launchrequest", "cloudaction", "sshkey", "projectsync"])
def test_instance_admins_are_read_only(client, staff_user, model, allocation):
    row = _instances_row(model, allocation)
    client.force_login(staff_user)
    change = reverse(f"admin:instances_{model}_change", args=[row.pk])
    assert client.get(reverse(f"admin:instances_{model}_changelist")).status_code == 200
    page = client.get(change)
    assert page.status_code == 200 and "Save" not in page.content.decode()
    assert client.post(change, {"name": "renamed"}).status_code == 403
    assert client.get(reverse(f"admin:instances_{model}_delete", args=[row.pk])).status_code == 403
    assert client.post(reverse(f"admin:instances_{model}_delete", args=[row.pk]), {"post": "yes"}).status_code == 403
    assert client.get(reverse(f"admin:instances_{model}_add")).status_code == 403
    assert type(row).objects.filter(pk=row.pk).exists()


def _instances_row(model, allocation):
    from instances import models as m

    user = allocation.pi
    common = {"allocation": allocation, "project_id": "proj-1"}
    if model == "instance":
        return m.Instance.objects.create(**common, server_id="srv-1", name="vm", status="ACTIVE")
    if model == "volume":
        return m.Volume.objects.create(**common, volume_id="vol-1", name="data", status="available")
    if model == "launchrequest":
        return m.LaunchRequest.objects.create(**common, name="vm", flavor_id="f", flavor_name="m3.tiny")
    if model == "cloudaction":
        return m.CloudAction.objects.create(**common, target_id="srv-1", action="stop")
    if model == "sshkey":
        return m.SSHKey.objects.create(user=user, name="laptop", public_key="ssh-ed25519 AAAA")
    return m.ProjectSync.objects.create(project_id="proj-1")
