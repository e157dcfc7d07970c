"""The allocation tasks' one retry policy and their status rows, with the cloud faked at the gateway
(portal.cloud.admin, portal.cloud.identity). Tasks run eagerly (`apply`): a retry runs at once,
in this process, through the same Celery code as in a worker."""
from datetime import timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.db.models.signals import post_save
from django.utils import timezone

from allocations import services, tasks
from allocations.models import Membership
from portal import services as portal_services
from portal.celery import app
from portal.cloud.admin import Project, User
from portal.cloud.errors import CloudUnavailable, Forbidden
from portal.cloud.identity import CatalogService
from portal.models import Operation
from tests.factories import UserFactory
from tests.fixtures.allocations import keystone_identity_for, make_allocation

pytestmark = pytest.mark.django_db

KEYSTONE_DOWN = CloudUnavailable(detail="Unable to establish connection to http://10.0.0.5:5000/v3/auth/tokens: "
                                        "Connection refused")
NOVA_503 = CloudUnavailable(detail="503 Service Unavailable: http://10.0.0.5:8774/v2.1/os-quota-sets/p-1")
CATALOG = [CatalogService("identity", "keystone", "RegionOne", "http://10.0.0.5:5000/v3"),
           CatalogService("compute", "nova", "RegionOne", "http://10.0.0.5:8774/v2.1"),
           CatalogService("network", "neutron", "RegionOne", "http://10.0.0.5:9696")]


@pytest.fixture(autouse=True)
def catalog(monkeypatch):
    monkeypatch.setattr("portal.cloud.identity.catalog_list", lambda **kw: CATALOG)


@pytest.fixture
def steps():
    """Every step a status row was saved with, in order."""
    seen = []

    def record(sender, instance, **kwargs):
        seen.append(instance.step)

    post_save.connect(record, sender=Operation, weak=False, dispatch_uid="test-tasks-steps")
    yield seen
    post_save.disconnect(sender=Operation, dispatch_uid="test-tasks-steps")


@pytest.fixture
def keystone(monkeypatch):
    """Role grants as Keystone keeps them; `failures` are raised, one per call, before any succeeds."""
    class Keystone:
        grants, revoked, failures, calls = set(), [], [], 0

    def role_grant(*, project_id, user_id, role):
        Keystone.calls += 1
        if Keystone.failures:
            raise Keystone.failures.pop(0)
        Keystone.grants.add((project_id, user_id, role))

    monkeypatch.setattr("portal.cloud.admin.user_exists", lambda user_id: True)
    monkeypatch.setattr("portal.cloud.admin.user_find", lambda name, domain: None)  # no name taken yet
    monkeypatch.setattr("portal.cloud.admin.role_grant", role_grant)
    monkeypatch.setattr("portal.cloud.admin.role_revoke_all",
                        lambda project_id, user_id: Keystone.revoked.append((project_id, user_id)))
    return Keystone


def grant_row(allocation, member):
    membership = Membership.objects.create(allocation=allocation, user=member, role="member")
    return portal_services.operation_create(
        kind="membership.grant", target=f"allocation:{allocation.pk}", user=allocation.pi,
        params={"membership_id": membership.pk, "user_id": member.pk, "email": member.email})


# --- One retry policy ------------------------------------------------------------------------


def test_every_cloud_task_retries_when_the_cloud_does_not_answer_with_capped_jittered_backoff():
    for task in (tasks.provision_allocation, tasks.close_allocation, tasks.grant_membership,
                 tasks.revoke_membership, tasks.restore_quotas, tasks.sync_flavor_access):
        assert task.autoretry_for == (CloudUnavailable,), task.name
        assert (task.retry_backoff, task.retry_backoff_max, task.retry_jitter, task.max_retries) == (
            settings.PORTAL_CLOUD_RETRY_BACKOFF, settings.PORTAL_CLOUD_RETRY_BACKOFF_MAX, True,
            settings.PORTAL_CLOUD_RETRIES), task.name
        assert task.acks_late, task.name


def test_a_grant_that_meets_an_outage_retries_and_the_row_says_so(allocation, keystone, steps, monkeypatch):
    # given Keystone refuses connections twice, then answers
    from celery.app import autoretry

    waits = []
    real = autoretry.get_exponential_backoff_interval
    monkeypatch.setattr(autoretry, "get_exponential_backoff_interval",
                        lambda **kw: waits.append(kw) or real(**kw))
    member = UserFactory()
    keystone_identity_for(member)
    row = grant_row(allocation, member)
    keystone.failures = [KEYSTONE_DOWN, KEYSTONE_DOWN]

    # when the task runs (its retries run at once here)
    tasks.grant_membership.apply(args=(row.pk,))

    # then the row said it was retrying, with what was down, and then succeeded
    retries = [s for s in steps if s.startswith("retrying")]
    assert retries == [f"retrying (1/{settings.PORTAL_CLOUD_RETRIES}): Identity unavailable",
                       f"retrying (2/{settings.PORTAL_CLOUD_RETRIES}): Identity unavailable"]
    row.refresh_from_db()
    assert (row.state, row.error, row.attempts) == ("succeeded", "", 3)
    assert (allocation.openstack_project_id, f"ks-{member.pk}", "member") in keystone.grants
    assert Membership.objects.get(user=member).keystone_role_granted
    # each wait is Celery's exponential backoff, capped and with full jitter
    assert [(w["factor"], w["retries"], w["maximum"], w["full_jitter"]) for w in waits] == [
        (settings.PORTAL_CLOUD_RETRY_BACKOFF, n, settings.PORTAL_CLOUD_RETRY_BACKOFF_MAX, True) for n in (0, 1)]


def test_after_the_last_attempt_the_row_fails_in_words(allocation, keystone, steps, monkeypatch):
    monkeypatch.setattr(tasks.grant_membership, "max_retries", 3)
    member = UserFactory()
    row = grant_row(allocation, member)
    keystone.failures = [KEYSTONE_DOWN] * 10
    monkeypatch.setattr("portal.cloud.admin.user_exists", lambda user_id: False)
    monkeypatch.setattr("portal.cloud.admin.user_ensure",
                        lambda **kw: User(id=f"ks-{member.pk}", name=member.email))

    tasks.grant_membership.apply(args=(row.pk,))

    row.refresh_from_db()
    assert keystone.calls == 4  # the first try and three retries
    assert [s for s in steps if s.startswith("retrying")][-1] == "retrying (3/3): Identity unavailable"
    assert row.state == "failed"
    assert row.error == (
        "The cloud did not answer (Identity unavailable); gave up after 4 tries over 1 minute. "
        f"Done: {member.email} is a member in the portal and has an OpenStack user. Not done: the member role on "
        "the project, so they cannot use it yet; removing and adding them again tries again.")
    assert not Membership.objects.get(user=member).keystone_role_granted


def test_a_refusal_that_is_not_an_outage_fails_at_once_in_words(allocation, keystone, steps):
    member = UserFactory()
    keystone_identity_for(member)
    row = grant_row(allocation, member)
    keystone.failures = [Forbidden()]

    tasks.grant_membership.apply(args=(row.pk,))

    row.refresh_from_db()
    assert keystone.calls == 1 and not [s for s in steps if s.startswith("retrying")]
    assert row.state == "failed" and row.error.startswith(
        "The cloud refused it: The cloud does not allow this for your project. Done: ")
    assert "Not done: the member role on the project" in row.error


def test_the_retry_step_names_the_service_whose_address_failed(allocation, monkeypatch, steps):
    monkeypatch.setattr(tasks.restore_quotas, "max_retries", 1)
    failures = [NOVA_503, NOVA_503]

    def quotas_set(**kw):
        raise failures.pop(0)

    monkeypatch.setattr("portal.cloud.admin.project_quotas_set", quotas_set)
    row = portal_services.operation_create(kind="allocation.restore_quotas", target=f"allocation:{allocation.pk}")

    tasks.restore_quotas.apply(args=(row.pk,))

    row.refresh_from_db()
    assert "retrying (1/1): Compute unavailable" in steps
    assert row.state == "failed" and row.error.startswith(
        "The cloud did not answer (Compute unavailable); gave up after 2 tries")
    assert "Not done: the project's quotas in OpenStack were not restored" in row.error


def test_when_the_catalog_cannot_be_read_either_keystone_is_what_is_down(monkeypatch):
    def no_catalog(**kw):
        raise CloudUnavailable()

    monkeypatch.setattr("portal.cloud.identity.catalog_list", no_catalog)
    assert portal_services.cloud_unavailable_words(NOVA_503) == "Identity unavailable"
    assert portal_services.cloud_unavailable_words(CloudUnavailable()) == "Cloud unavailable"  # no address to go by


def test_a_provisioning_that_gives_up_names_what_it_did_and_did_not(monkeypatch, user):
    monkeypatch.setattr(tasks.provision_allocation, "max_retries", 0)
    allocation = make_allocation(pi=user, status="approved", project_id="")
    monkeypatch.setattr("portal.cloud.admin.project_ensure", lambda **kw: Project("p-new", kw["name"], True))

    def quotas_set(**kw):
        raise NOVA_503

    monkeypatch.setattr("portal.cloud.admin.project_quotas_set", quotas_set)
    row = portal_services.operation_create(kind="allocation.provision", target=f"allocation:{allocation.pk}")

    tasks.provision_allocation.apply(args=(row.pk,))

    row.refresh_from_db()
    assert row.state == "failed"
    assert row.error.endswith("Done: the project exists. Not done: its quotas, its flavors, the members' roles; "
                              "the allocation stays approved until they are (Retry provisioning in admin runs the "
                              "rest).")
    allocation.refresh_from_db()
    assert allocation.status == "approved" and allocation.openstack_project_id == "p-new"


def test_an_unexpected_error_still_fails_the_row(allocation, monkeypatch):
    def broken(**kw):
        raise ZeroDivisionError

    monkeypatch.setattr("portal.cloud.admin.project_quotas_set", broken)
    row = portal_services.operation_create(kind="allocation.restore_quotas", target=f"allocation:{allocation.pk}")

    tasks.restore_quotas.apply(args=(row.pk,))

    row.refresh_from_db()
    assert row.state == "failed" and row.error.startswith("An unexpected error stopped it")


# --- Grant, revoke, restore and flavor access are status rows ---------------------------------


@pytest.fixture
def sent(monkeypatch):
    """(task name, args, task id) of everything enqueued, instead of sending it."""
    found = []
    for task in (tasks.grant_membership, tasks.revoke_membership, tasks.restore_quotas, tasks.sync_flavor_access):
        monkeypatch.setattr(task, "apply_async",
                            lambda args=(), _name=task.name, **kw: found.append((_name, tuple(args), kw["task_id"])))
    return found


def test_adding_a_member_makes_a_grant_row_enqueued_on_commit(allocation, sent, django_capture_on_commit_callbacks):
    member = UserFactory()
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.membership_add(allocation=allocation, user=member, by=allocation.pi)
        assert sent == []  # nothing leaves before the commit
    for callback in callbacks:
        callback()

    row = Operation.objects.get(kind="membership.grant")
    membership = Membership.objects.get(user=member)
    assert (row.state, row.target, row.requested_by, row.params) == (
        "queued", f"allocation:{allocation.pk}", allocation.pi,
        {"membership_id": membership.pk, "user_id": member.pk, "email": member.email})
    assert sent == [("allocations.tasks.grant_membership", (row.pk,), row.celery_task_id)]


def test_removing_a_member_makes_a_revoke_row_and_the_task_revokes(allocation, sent, keystone,
                                                                   django_capture_on_commit_callbacks):
    member = UserFactory()
    keystone_identity_for(member)
    membership = Membership.objects.create(allocation=allocation, user=member, role="member")
    with django_capture_on_commit_callbacks(execute=True):
        services.membership_remove(membership=membership, by=allocation.pi)

    row = Operation.objects.get(kind="membership.revoke")
    assert (row.target, row.requested_by, row.params) == (
        f"allocation:{allocation.pk}", allocation.pi, {"user_id": member.pk, "email": member.email})
    assert sent == [("allocations.tasks.revoke_membership", (row.pk,), row.celery_task_id)]

    tasks.revoke_membership.apply(args=(row.pk,))
    row.refresh_from_db()
    assert row.state == "succeeded" and keystone.revoked == [(allocation.openstack_project_id, f"ks-{member.pk}")]


def test_a_revoke_for_someone_added_back_meanwhile_keeps_their_role(allocation, keystone):
    member = UserFactory()
    Membership.objects.create(allocation=allocation, user=member, role="member")
    row = portal_services.operation_create(kind="membership.revoke", target=f"allocation:{allocation.pk}",
                                           params={"user_id": member.pk, "email": member.email})
    tasks.revoke_membership.apply(args=(row.pk,))
    row.refresh_from_db()
    assert (row.state, row.step, keystone.revoked) == ("succeeded", "a member again", [])


def test_reenabling_an_exhausted_allocation_makes_a_restore_row(allocation, staff_user, sent, monkeypatch,
                                                                django_capture_on_commit_callbacks):
    allocation.status, allocation.disabled_at = "exhausted", timezone.now()
    allocation.save()
    with django_capture_on_commit_callbacks(execute=True):
        services.allocation_add_sus(allocation=allocation, sus=Decimal(500), by=staff_user)

    row = Operation.objects.get(kind="allocation.restore_quotas")
    assert (row.target, row.requested_by) == (f"allocation:{allocation.pk}", staff_user)
    assert sent == [("allocations.tasks.restore_quotas", (row.pk,), row.celery_task_id)]

    restored = []
    monkeypatch.setattr("portal.cloud.admin.project_quotas_set", lambda **kw: restored.append(kw["project_id"]))
    tasks.restore_quotas.apply(args=(row.pk,))
    row.refresh_from_db()
    assert row.state == "succeeded" and restored == [allocation.openstack_project_id]


def test_a_flavor_rule_change_makes_a_row_per_project_of_the_kind(sent, django_capture_on_commit_callbacks):
    gpu = [make_allocation(kind="research_gpu", project_id=f"p-gpu-{n}") for n in range(2)]
    make_allocation(kind="research_gpu", project_id="", status="approved")  # no project yet: provisioning opens
    make_allocation(kind="research_cpu", project_id="p-cpu")
    with django_capture_on_commit_callbacks(execute=True):
        services.flavor_access_apply(kind="research_gpu")

    rows = list(Operation.objects.filter(kind="allocation.flavor_access").order_by("pk"))
    assert sorted(r.target for r in rows) == sorted(f"allocation:{a.pk}" for a in gpu)
    assert all(r.params == {"kind": "research_gpu"} for r in rows)
    assert sent == [("allocations.tasks.sync_flavor_access", (r.pk,), r.celery_task_id) for r in rows]


def test_the_stale_sweep_fails_a_grant_row_that_never_finished(allocation):
    row = grant_row(allocation, UserFactory())
    row = portal_services.status_row_start(row=row, step="granting the member role")
    Operation.objects.filter(pk=row.pk).update(started_at=timezone.now() - timedelta(hours=2))

    assert portal_services.status_rows_fail_stale(deadline_seconds=3600) >= 1
    row.refresh_from_db()
    assert (row.state, row.step) == ("failed", "timed out")


def test_a_finished_row_is_not_run_again(allocation, keystone):
    row = grant_row(allocation, UserFactory())
    portal_services.status_row_cancel(row=row)
    tasks.grant_membership.apply(args=(row.pk,))
    assert keystone.calls == 0


# --- Queues ----------------------------------------------------------------------------------


@pytest.mark.parametrize("task, queue", [
    ("instances.tasks.sync_project", "PORTAL_SYNC_QUEUE"),
    ("instances.tasks.sync_all_projects", "PORTAL_SYNC_QUEUE"),
    ("instances.tasks.launch_provision", "PORTAL_CLOUD_QUEUE"),
    ("instances.tasks.action_run", "PORTAL_CLOUD_QUEUE"),
    ("allocations.tasks.provision_allocation", "PORTAL_CLOUD_QUEUE"),
    ("allocations.tasks.grant_membership", "PORTAL_CLOUD_QUEUE"),
    ("allocations.tasks.revoke_membership", "PORTAL_CLOUD_QUEUE"),
    ("allocations.tasks.restore_quotas", "PORTAL_CLOUD_QUEUE"),
    ("allocations.tasks.sync_flavor_access", "PORTAL_CLOUD_QUEUE"),
    ("allocations.tasks.meter_allocations", "CELERY_TASK_DEFAULT_QUEUE"),
    ("portal.tasks.fail_stale_operations", "CELERY_TASK_DEFAULT_QUEUE"),
])
def test_the_mirror_sync_has_a_queue_of_its_own_apart_from_cloud_work(task, queue):
    assert app.amqp.router.route({}, task)["queue"].name == getattr(settings, queue)
    assert settings.PORTAL_SYNC_QUEUE != settings.PORTAL_CLOUD_QUEUE


def test_a_message_from_before_the_rows_never_touches_another_operation(allocation, keystone):
    # an old grant message carried a membership's id, which may be some other operation's id
    other = portal_services.status_row_start(
        row=portal_services.operation_create(kind="allocation.provision", target=f"allocation:{allocation.pk}"))
    tasks.grant_membership.apply(args=(other.pk,))
    tasks.sync_flavor_access.apply(args=("research_gpu",))  # its old argument, a kind
    other.refresh_from_db()
    assert (other.state, keystone.calls) == ("running", 0)
