from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from allocations import provisioning, services
from allocations.models import Allocation, AllocationStatus, Membership
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


def test_approve_awards_sus_names_a_project_and_queues_provisioning(user, staff_user,
                                                                    django_capture_on_commit_callbacks):
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


def test_a_member_needs_a_verified_email(allocation):
    unverified = UserFactory(verified=False)
    with pytest.raises(ValidationError, match="has not verified"):
        services.membership_add(allocation=allocation, user=unverified)
    assert not Membership.objects.filter(user=unverified).exists()


@pytest.mark.parametrize("typed, stored", [
    ("Climate\nensembles", "Climate ensembles"),
    ("  Climate\r\n\tensembles\x00\x1b[31m ", "Climate ensembles [31m"),
    ("Climate\u2028ensembles\u2029\x7f\x85", "Climate ensembles"),
    ("Climate \u202eselbmesne", "Climate selbmesne"),
])
def test_a_title_is_stored_on_one_line_whoever_sends_it(user, typed, stored):
    assert request(user, title=typed).title == stored


def test_a_title_of_nothing_but_control_characters_is_refused(user):
    with pytest.raises(ValidationError, match="title"):
        request(user, title="\n\t\x00")


def test_mail_about_a_title_with_newlines_is_sent_with_a_one_line_subject(user, staff_user, mailoutbox,
                                                                          django_capture_on_commit_callbacks):
    allocation = request(user)
    Allocation.objects.filter(pk=allocation.pk).update(title="Ensembles\r\nBcc: all@example.org\u2028" + "x" * 160)
    allocation.refresh_from_db()
    with django_capture_on_commit_callbacks(execute=True):
        services.allocation_reject(allocation=allocation, reviewer=staff_user, note="No.")
    subject = mailoutbox[0].subject
    assert subject.startswith("[Research Cloud] Allocation not approved: Ensembles Bcc: all@example.org x")
    assert "\n" not in subject and "\r" not in subject and len(subject) <= 200
    assert mailoutbox[0].to == [user.email] and "Bcc" not in mailoutbox[0].extra_headers


def approve(allocation, reviewer, project_id):
    return services.allocation_approve(allocation=allocation, reviewer=reviewer, awarded_sus=Decimal(100),
                                       start_date=allocation.start_date, end_date=allocation.end_date,
                                       existing_project_id=project_id)


def test_approve_links_a_free_existing_project(user, staff_user, monkeypatch):
    monkeypatch.setattr(provisioning, "portal_own_project_ids", lambda: {"portal-admin-project"}, raising=False)
    allocation = request(user)
    approve(allocation, staff_user, " 0f1e2d3c4b5a69788796a5b4c3d2e1f0 ")
    allocation.refresh_from_db()
    assert allocation.status == "approved" and allocation.openstack_project_id == "0f1e2d3c4b5a69788796a5b4c3d2e1f0"


def test_approve_refuses_a_project_that_another_allocation_holds(user, staff_user, allocation):
    # `allocation` (Protein folding) holds proj-1; a new request may not take it over.
    newcomer = request(user)
    for typed in ("proj-1", "PROJ-1", " proj-1 "):
        with pytest.raises(ValidationError, match=f"already belongs to allocation #{allocation.pk} “Protein folding”"):
            approve(newcomer, staff_user, typed)
    newcomer.refresh_from_db()
    assert newcomer.status == "requested" and newcomer.openstack_project_id == "" and newcomer.balance() == 0


def test_approve_refuses_a_closed_allocations_project_too(user, staff_user):
    from tests.fixtures.allocations import make_allocation

    make_allocation(pi=user, status="closed", project_id="old-project", title="Finished")
    with pytest.raises(ValidationError, match="already belongs"):
        approve(request(user), staff_user, "old-project")


def test_approve_refuses_the_portals_own_projects(user, staff_user, monkeypatch):
    monkeypatch.setattr(provisioning, "portal_own_project_ids", lambda: {"admin-project-id", "service-project-id"},
                        raising=False)
    allocation = request(user)
    for project_id in ("admin-project-id", "Service-Project-Id"):
        with pytest.raises(ValidationError, match="is the portal's own project"):
            approve(allocation, staff_user, project_id)
    assert Allocation.objects.get(pk=allocation.pk).status == "requested"


def test_approve_without_portal_own_project_ids_still_checks_other_allocations(user, staff_user, monkeypatch,
                                                                               allocation):
    monkeypatch.delattr(provisioning, "portal_own_project_ids", raising=False)
    with pytest.raises(ValidationError, match="already belongs"):
        approve(request(user), staff_user, "proj-1")
    approve(request(user), staff_user, "unclaimed-project")


def test_adding_sus_with_the_same_key_twice_adds_once(allocation, staff_user):
    services.allocation_add_sus(allocation=allocation, sus=Decimal(500), by=staff_user, key="form-key-1:1")
    with pytest.raises(ValidationError, match="already added"):
        services.allocation_add_sus(allocation=allocation, sus=Decimal(500), by=staff_user, key="form-key-1:1")
    services.allocation_add_sus(allocation=allocation, sus=Decimal(250), by=staff_user, key="form-key-2:1")
    allocation.refresh_from_db()
    assert allocation.balance() == Decimal(10750) and allocation.awarded_sus == Decimal(10750)


def test_a_key_lost_to_a_concurrent_use_is_refused_by_the_database(allocation, staff_user, monkeypatch):
    # The other request committed between our check and our insert: the unique key still holds.
    services.allocation_add_sus(allocation=allocation, sus=Decimal(500), by=staff_user, key="raced-key")
    monkeypatch.setattr(services.LedgerEntry.objects, "filter",
                        lambda **kw: services.LedgerEntry.objects.none())
    with pytest.raises(ValidationError, match="already added"):
        services.allocation_add_sus(allocation=allocation, sus=Decimal(500), by=staff_user, key="raced-key")
    assert allocation.ledger.filter(kind="award").count() == 2  # the fixture's award and one supplement
