from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from allocations.models import Allocation
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
