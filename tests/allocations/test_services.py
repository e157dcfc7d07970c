from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from allocations import services
from allocations.models import AllocationStatus, Membership
from portal.models import Operation
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def request(pi, **kw):
    today = timezone.localdate()
    data = dict(pi=pi, title="Climate ensembles", kind="research_cpu", requested_sus=Decimal(50000),
                justification="Ten 1-year runs.", start_date=today, end_date=today + timedelta(days=365))
    return services.allocation_request(**{**data, **kw})


def test_request_makes_the_requester_its_pi(user):
    allocation = request(user)
    assert allocation.status == AllocationStatus.REQUESTED
    assert Membership.objects.get(allocation=allocation).role == "pi"


def test_request_with_end_before_start_is_refused(user):
    with pytest.raises(ValidationError):
        request(user, end_date=timezone.localdate() - timedelta(days=1))


def test_approve_awards_sus_names_a_project_and_queues_provisioning(user, staff_user, django_capture_on_commit_callbacks):
    allocation = request(user)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        op = services.allocation_approve(allocation=allocation, reviewer=staff_user, awarded_sus=Decimal(40000),
                                         start_date=allocation.start_date, end_date=allocation.end_date)
    allocation.refresh_from_db()
    assert allocation.status == "approved" and allocation.balance() == Decimal(40000)
    assert allocation.openstack_project_name.startswith(f"alloc-{allocation.pk}-climate-ensembles-")
    assert op.kind == "allocation.provision" and len(callbacks) == 1
    with pytest.raises(ValidationError):
        services.allocation_approve(allocation=allocation, reviewer=staff_user, awarded_sus=Decimal(1),
                                    start_date=allocation.start_date, end_date=allocation.end_date)


def test_reject_needs_a_note_and_mails_it(user, staff_user, mailoutbox, django_capture_on_commit_callbacks):
    allocation = request(user)
    with pytest.raises(ValidationError):
        services.allocation_reject(allocation=allocation, reviewer=staff_user, note=" ")
    with django_capture_on_commit_callbacks(execute=True):
        services.allocation_reject(allocation=allocation, reviewer=staff_user, note="Please size the runs.")
    assert Operation.objects.count() == 0
    assert "Please size the runs." in mailoutbox[0].body


def test_adding_sus_reenables_an_exhausted_allocation(allocation, staff_user, django_capture_on_commit_callbacks):
    allocation.status, allocation.disabled_at = "exhausted", timezone.now()
    allocation.save()
    services.allocation_add_sus(allocation=allocation, sus=Decimal(500), by=staff_user)
    allocation.refresh_from_db()
    assert allocation.status == "active" and allocation.disabled_at is None


def test_the_pi_cannot_be_removed(allocation):
    with pytest.raises(ValidationError):
        services.membership_remove(membership=allocation.memberships.get(), by=allocation.pi)


def test_a_member_is_added_once(allocation):
    other = UserFactory()
    services.membership_add(allocation=allocation, user=other)
    with pytest.raises(ValidationError, match="already a member"):
        services.membership_add(allocation=allocation, user=other)
