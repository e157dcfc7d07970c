"""Allocations against the real local cloud: Keystone projects, quotas, roles, credentials,
metering of real servers and enforcement that really shelves and deletes them."""
import re
from datetime import UTC, timedelta
from decimal import Decimal

import openstack
import pytest
from django.urls import reverse
from django.utils import timezone

from allocations import charging, enforcement, metering
from allocations.models import Allocation, KeystoneIdentity, LedgerEntry
from allocations.scopes import service_scope
from portal.cloud import usage
from tests.cloud_sdk import connection_get
from tests.factories import UserFactory
from tests.fixtures.celery_worker import wait_for
from tests.fixtures.cloud_allocations import remove_project

pytestmark = pytest.mark.integration


def boot(project_id: str, flavor: str, name: str):
    conn = connection_get(project_id=project_id)
    server = conn.compute.create_server(
        name=name, flavor_id=conn.compute.find_flavor(flavor, ignore_missing=False).id,
        image_id=conn.image.find_image("Featured-Ubuntu24", ignore_missing=False).id, networks="none")
    return conn.compute.wait_for_server(server, status="ACTIVE", wait=120, interval=1)


def nova_status(project_id: str, server_id: str) -> str:
    server = connection_get(project_id=project_id).compute.find_server(server_id, ignore_missing=True)
    return server.status if server else "GONE"


@pytest.mark.django_db(transaction=True)
def test_admin_approval_in_django_admin_creates_the_project_with_quotas_and_roles(
        devcloud, celery_worker_process, client):
    pi = UserFactory()
    staff = UserFactory(username="reviewer", is_staff=True, is_superuser=True)
    today = timezone.localdate()
    client.force_login(pi)
    client.post(reverse("allocations:request"), {
        "title": "Ocean models", "kind": "research_cpu", "requested_sus": "20000", "storage_gb": "750",
        "start_date": today.isoformat(), "end_date": (today + timedelta(days=180)).isoformat(),
        "justification": "Ensembles."})
    allocation = Allocation.objects.get(title="Ocean models")

    client.force_login(staff)
    changelist = reverse("admin:allocations_allocation_changelist")
    form_page = client.post(changelist, {"action": "approve", "_selected_action": [allocation.pk]})
    assert form_page.status_code == 200 and "Awarded SUs" in form_page.content.decode()
    client.post(changelist, {"action": "approve", "_selected_action": [allocation.pk], "apply": "Approve",
                             "awarded_sus": "15000", "start_date": today.isoformat(),
                             "end_date": (today + timedelta(days=180)).isoformat(), "note": "Welcome."})
    try:
        wait_for(lambda: Allocation.objects.get(pk=allocation.pk).status == "active", timeout=90,
                 message="the worker to provision the allocation")
        allocation.refresh_from_db()
        assert allocation.balance() == Decimal(15000)

        admin = connection_get()
        project = admin.identity.get_project(allocation.openstack_project_id)
        assert project.is_enabled and project.name == allocation.openstack_project_name
        compute = admin.compute.get_quota_set(project.id)
        assert (compute.cores, compute.ram, compute.instances) == (150, 585 * 1024, 150)
        assert admin.network.get_quota(project.id).floating_ips == 10
        assert admin.block_storage.get_quota_set(project.id).gigabytes == 750

        pi_keystone = KeystoneIdentity.objects.get(user=pi).keystone_user_id
        roles = {a.role["name"] for a in admin.identity.role_assignments(
            scope_project_id=project.id, user_id=pi_keystone, include_names=True)}
        assert "member" in roles
    finally:
        remove_project(allocation)


@pytest.mark.django_db
def test_credentials_page_clouds_yaml_works_with_openstacksdk_on_the_same_project(
        cloud_allocation, client, tmp_path):
    client.force_login(cloud_allocation.pi)
    page = client.post(reverse("allocations:credentials"), {
        "allocation": cloud_allocation.pk, "name": "laptop", "expires_in_days": "30"})
    body = page.content.decode()
    assert "Download clouds.yaml" in body, body[-2000:]
    assert page["Cache-Control"] == "no-store"
    link = re.search(r'href="(/credentials/download/[^"]+/)" download="clouds.yaml"', body).group(1)
    clouds_yaml = tmp_path / "clouds.yaml"
    download = client.get(link)
    assert download.status_code == 200
    clouds_yaml.write_bytes(download.content)
    assert client.get(link).status_code == 404  # the link works once; the portal kept no secret

    # As a CLI user would: openstacksdk with nothing but the downloaded file.
    region = openstack.config.OpenStackConfig(config_files=[str(clouds_yaml)]).get_one(
        cloud=cloud_allocation.openstack_project_name)
    conn = openstack.connection.Connection(config=region)
    server = conn.compute.create_server(
        name="from-the-cli", flavor_id=conn.compute.find_flavor("m3.tiny", ignore_missing=False).id,
        image_id=conn.image.find_image("Featured-Ubuntu24", ignore_missing=False).id, networks="none")
    conn.compute.wait_for_server(server, status="ACTIVE", wait=120, interval=1)

    seen_by_portal = {s.id for s in usage.server_usage_list(scope=service_scope(allocation=cloud_allocation))}
    assert {s.id for s in conn.compute.servers()} == seen_by_portal == {server.id}
    conn.close()


@pytest.mark.django_db
def test_meter_charges_real_servers_by_flavor_and_state(cloud_allocation):
    server = boot(cloud_allocation.openstack_project_id, "m3.quad", "quad")
    created = usage.server_usage_list(scope=service_scope(allocation=cloud_allocation))[0].created_at

    metering.allocation_meter(allocation=cloud_allocation, now=created + timedelta(hours=10))
    # 10 h ACTIVE at 4 SU/h; the seconds it spent building are not charged
    charged = Decimal(10000) - cloud_allocation.balance()
    assert Decimal("39.9") < charged <= Decimal(40)

    conn = connection_get(project_id=cloud_allocation.openstack_project_id)
    conn.compute.suspend_server(server)
    conn.compute.wait_for_server(server, status="SUSPENDED", wait=60, interval=1)
    metering.allocation_meter(allocation=cloud_allocation, now=created + timedelta(hours=14))
    metering.allocation_meter(allocation=cloud_allocation, now=created + timedelta(hours=14))
    assert Decimal(10000) - cloud_allocation.balance() == charged + Decimal("0.75") * 4 * 4
    assert LedgerEntry.objects.filter(allocation=cloud_allocation, kind="usage").count() == 2


@pytest.mark.django_db
def test_exhaustion_refuses_launches_then_shelves_then_deletes_real_servers(cloud_allocation, mailoutbox):
    project_id = cloud_allocation.openstack_project_id
    server = boot(project_id, "m3.small", "doomed")
    conn = connection_get(project_id=project_id)  # and a Heat stack in the project, of one network
    stack = conn.orchestration.create_stack(name="doomed-stack", template={
        "heat_template_version": "2021-04-16", "resources": {"net": {"type": "OS::Neutron::Net"}}})
    wait_for(lambda: conn.orchestration.get_stack(stack.id).status == "CREATE_COMPLETE", timeout=90,
             message="the stack to be made")
    LedgerEntry.objects.create(allocation=cloud_allocation, kind="usage", sus=Decimal(-10000), resource_id="bulk")
    start = timezone.now()

    enforcement.allocations_enforce(now=start)
    cloud_allocation.refresh_from_db()
    assert cloud_allocation.status == "exhausted"
    with pytest.raises(charging.InsufficientBalance, match="no new instances"):
        charging.preflight_launch(allocation=cloud_allocation, flavor_name="m3.tiny", vcpus=1)
    assert connection_get().compute.get_quota_set(project_id).instances == 0

    enforcement.allocations_enforce(now=start + timedelta(days=10))
    wait_for(lambda: nova_status(project_id, server.id) in ("SHELVED", "SHELVED_OFFLOADED"), timeout=90,
             message="Nova to shelve the server")

    enforcement.allocations_enforce(now=start + timedelta(days=30))
    wait_for(lambda: nova_status(project_id, server.id) == "GONE", timeout=90, message="the server to be deleted")
    # the stack goes too, with the network it made
    wait_for(lambda: conn.orchestration.find_stack(stack.id) is None
             or conn.orchestration.get_stack(stack.id).status == "DELETE_COMPLETE", timeout=90,
             message="the stack to be deleted")
    assert not [n for n in conn.network.networks(project_id=project_id)]
    assert [m.subject.split("] ")[-1].split(":")[0] for m in mailoutbox] == [
        "Allocation disabled", "Shelving instances", "Deleting resources"]


@pytest.mark.django_db
def test_removing_a_member_revokes_their_role_and_closing_disables_the_project(
        cloud_allocation, django_capture_on_commit_callbacks, monkeypatch):
    from allocations import services
    from portal.celery import app

    monkeypatch.setitem(app.conf, "task_always_eager", True)  # tasks run inline, in this test's transaction

    project_id = cloud_allocation.openstack_project_id
    admin = connection_get()
    member = UserFactory()
    with django_capture_on_commit_callbacks(execute=True):
        services.membership_add(allocation=cloud_allocation, user=member, by=cloud_allocation.pi)
    ks_user = wait_for(lambda: KeystoneIdentity.objects.filter(user=member).first(), timeout=5,
                       message="the member's Keystone user").keystone_user_id

    def roles():
        return {a.role["name"] for a in admin.identity.role_assignments(
            scope_project_id=project_id, user_id=ks_user, include_names=True)}

    assert "member" in roles()
    with django_capture_on_commit_callbacks(execute=True):
        services.membership_remove(membership=cloud_allocation.memberships.get(user=member), by=cloud_allocation.pi)
    assert roles() == set()

    with django_capture_on_commit_callbacks(execute=True):
        services.allocation_close(allocation=cloud_allocation, by=cloud_allocation.pi, note="Project finished.")
    assert admin.identity.get_project(project_id).is_enabled is False


@pytest.mark.django_db
def test_meter_splits_a_real_servers_charge_at_the_stop_nova_recorded(cloud_allocation):
    """Charging by state intervals against the real cloud: the ACTIVE part ends, and the SHUTOFF
    part begins, when Nova's stop action finished (its events, as the project's own member sees them)."""
    import time

    from django.utils.dateparse import parse_datetime

    def finished_at(server_id: str, action: str):
        entry = next(a for a in conn.compute.server_actions(server_id) if a.action == action)
        events = conn.compute.get_server_action(entry.request_id, server_id).events
        return max(parse_datetime(e.finish_time).replace(tzinfo=UTC) for e in events)

    # Given an m3.quad that ran a few seconds and was then stopped with the CLI
    project_id = cloud_allocation.openstack_project_id
    conn = connection_get(project_id=project_id)
    server = boot(project_id, "m3.quad", "split")
    time.sleep(5)
    conn.compute.stop_server(server)
    conn.compute.wait_for_server(server, status="SHUTOFF", wait=120, interval=1)
    active_at, stopped_at = finished_at(server.id, "create"), finished_at(server.id, "stop")

    # When the meter runs an hour after the stop (and again, for the same hour)
    now = stopped_at + timedelta(hours=1)
    metering.allocation_meter(allocation=cloud_allocation, now=now)
    metering.allocation_meter(allocation=cloud_allocation, now=now)

    # Then one row per state, split where Nova says the server stopped, each at its own rate
    active, shutoff = LedgerEntry.objects.filter(
        allocation=cloud_allocation, kind="usage", resource_id=server.id).order_by("period_start")
    assert (active.state, active.su_rate, shutoff.state, shutoff.su_rate) == ("ACTIVE", 4, "SHUTOFF", 2)
    assert abs((active.period_start - active_at).total_seconds()) <= 2  # building is not charged
    assert abs((active.period_end - stopped_at).total_seconds()) <= 2
    assert shutoff.period_start == active.period_end and shutoff.period_end == now
    for row in (active, shutoff):
        hours = Decimal((row.period_end - row.period_start).total_seconds()) / 3600
        assert -row.sus == (row.su_rate * hours).quantize(Decimal("0.0001"))
    assert abs(-shutoff.sus - 2) < Decimal("0.01")  # an hour SHUTOFF at 2 SU/hour, give or take a second


@pytest.mark.django_db
def test_meter_charges_a_deleted_real_server_up_to_its_deletion(cloud_allocation):
    """Nova keeps a deleted server's action log, and the project's member may read it: the meter
    charges up to the delete's finish, not up to the run, and never again afterwards."""
    import time

    from django.utils.dateparse import parse_datetime

    project_id = cloud_allocation.openstack_project_id
    conn = connection_get(project_id=project_id)
    server = boot(project_id, "m3.quad", "brief")
    metering.allocation_meter(allocation=cloud_allocation, now=timezone.now())  # seen once, ACTIVE
    time.sleep(3)
    conn.compute.delete_server(server)
    conn.compute.wait_for_delete(server, wait=120, interval=1)
    delete = next(a for a in conn.compute.server_actions(server.id) if a.action == "delete")
    events = conn.compute.get_server_action(delete.request_id, server.id).events
    deleted_at = max(parse_datetime(e.finish_time).replace(tzinfo=UTC) for e in events)

    metering.allocation_meter(allocation=cloud_allocation, now=deleted_at + timedelta(hours=1))
    metering.allocation_meter(allocation=cloud_allocation, now=deleted_at + timedelta(hours=2))
    last = LedgerEntry.objects.filter(allocation=cloud_allocation, resource_id=server.id).latest("period_end")
    assert abs((last.period_end - deleted_at).total_seconds()) <= 2
    assert cloud_allocation.meter_cursors.get(resource_id=server.id).gone


@pytest.mark.django_db(transaction=True)
def test_a_member_added_and_removed_is_granted_and_revoked_through_status_rows_by_the_worker(
        cloud_allocation, celery_worker_process):
    """The real path: the PI adds a member, the row is enqueued on commit to the cloud queue, the
    session's worker grants the role in Keystone; removing them revokes it the same way."""
    from allocations import services
    from portal.models import Operation

    def finished(kind: str) -> Operation:
        return wait_for(lambda: Operation.objects.filter(kind=kind, state__in=["succeeded", "failed"]).first(),
                        timeout=90, message=f"the {kind} row to finish")

    project_id = cloud_allocation.openstack_project_id
    member = UserFactory()
    services.membership_add(allocation=cloud_allocation, user=member, by=cloud_allocation.pi)
    grant = finished("membership.grant")
    assert (grant.state, grant.error, grant.target, grant.requested_by) == (
        "succeeded", "", f"allocation:{cloud_allocation.pk}", cloud_allocation.pi)
    ks_user = KeystoneIdentity.objects.get(user=member).keystone_user_id

    def roles():
        return {a.role["name"] for a in connection_get().identity.role_assignments(
            scope_project_id=project_id, user_id=ks_user, include_names=True)}

    assert "member" in roles()
    assert cloud_allocation.memberships.get(user=member).keystone_role_granted

    services.membership_remove(membership=cloud_allocation.memberships.get(user=member), by=cloud_allocation.pi)
    revoke = finished("membership.revoke")
    assert (revoke.state, revoke.error) == ("succeeded", "")
    assert roles() == set()
    connection_get().identity.delete_user(ks_user, ignore_missing=True)  # no longer a member: teardown misses it
