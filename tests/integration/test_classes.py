"""Classes against the real local cloud with a real Celery worker (issue 11): a class's seats are
launched through the portal as the class's owner, each server ACTIVE in Nova with its own student's
user data; no student gets a role in the project; after the last day the seats are shelved, and
deleted once the days before deletion have passed."""
from __future__ import annotations

import base64
import datetime
import time

import pytest
import yaml

from classes import selectors, services
from classes.models import ClassTemplate
from instances.models import CloudAction
from instances.services import project_sync
from tests.cloud_sdk import connection_get
from tests.fixtures.celery_worker import wait_for
from tests.instances.integration_support import instances_allocation, nova_servers

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
__all__ = ["instances_allocation"]


@pytest.fixture(autouse=True)
def seeded_templates(transactional_db):
    """A transactional test's flush empties the tables its migrations seeded: seed them again."""
    from classes.seeds import templates_seed

    templates_seed()


def seats_shown(course):
    return selectors.course_page(course=course, flavor_vcpus=None)["seats"]


def test_a_class_launches_one_seat_per_student_each_with_its_own_user_data(instances_allocation,
                                                                          celery_worker_process):
    allocation, pid = instances_allocation, instances_allocation.openstack_project_id
    admin = connection_get()
    roles_before = {a.user["id"] for a in admin.identity.role_assignments(scope_project_id=pid) if a.user}
    today = datetime.date.today()
    course = services.course_create(
        user=allocation.pi, allocation=allocation, template=ClassTemplate.objects.get(name="Ubuntu 24.04"),
        name="intro", title="Intro to the cloud", starts_on=today, ends_on=today + datetime.timedelta(days=30),
        roster="email,name\nada@uni.example,Ada\ngrace@uni.example,Grace\nalan@uni.example,Alan\n")
    # when the educator launches every seat
    assert len(services.course_launch(user=allocation.pi, course=course)) == 3
    # then each seat is ready, its server ACTIVE in the class's project under the seat's name
    wait_for(lambda: all(s.shown_state == "ready" for s in seats_shown(course)), timeout=240, interval=2,
             message="every seat ready")
    servers = {s.name: s for s in nova_servers(pid)}
    for seat in seats_shown(course):
        server = servers[seat.server_name]
        assert server.status == "ACTIVE" and server.user_id == allocation.pi.keystone.keystone_user_id
        # and it boots with its own student's account, nobody else's
        shown = admin.compute.get(f"/servers/{server.id}", microversion="2.3").json()["server"]
        data = yaml.safe_load(base64.b64decode(shown["OS-EXT-SRV-ATTR:user_data"]))
        assert [u["name"] for u in data["users"][1:]] == [seat.username]
        assert data["users"][1]["passwd"].startswith("$6$")
    # and each seat's ssh command names its public IP (it reaches Nova's addresses, and so the mirror's
    # sync, a moment after the launch has assigned it)
    def public():
        project_sync(allocation=allocation, full=True)
        return all(s.instance and s.instance.floating_ips and s.ssh == f"ssh {s.username}@{s.instance.floating_ips[0]}"
                   for s in seats_shown(course))

    wait_for(public, timeout=180, interval=3, message="every seat's ssh command with its public IP")
    # and no student got a role in the project: its role holders are who they were
    assert {a.user["id"] for a in admin.identity.role_assignments(scope_project_id=pid) if a.user} == roles_before

    # the day after the last day, the seats are shelved in Nova (0 SU), as the class's owner
    asked = services.courses_end(today=course.ends_on + datetime.timedelta(days=1))
    assert asked == {"shelve": 3, "delete": 0}
    wait_for(lambda: {s.status for s in nova_servers(pid) if s.name.startswith("intro-")} == {"SHELVED_OFFLOADED"},
             timeout=180, interval=2, message="every seat shelved in Nova")
    # and once the days before deletion have passed, they are deleted, and the class with them (once the
    # shelves' own rows are final: a seat with an action still running is asked again at the next run)
    wait_for(lambda: not CloudAction.objects.filter(state__in=["queued", "running"]).exists(), timeout=180,
             interval=2, message="the shelve actions to be final")
    project_sync(allocation=allocation, full=True)
    assert services.courses_end(today=course.ends_on + datetime.timedelta(days=15)) == {"shelve": 0, "delete": 3}
    wait_for(lambda: not [s for s in nova_servers(pid) if s.name.startswith("intro-")], timeout=180, interval=2,
             message="every seat deleted in Nova")
    project_sync(allocation=allocation, full=True)
    services.courses_end(today=course.ends_on + datetime.timedelta(days=16))
    course.refresh_from_db()
    assert course.state == "deleted"


# The class of 30 with bad lines 7 and 19 runs in make test-load (about 4 minutes here);
# make test runs a class of 12 with bad lines 7 and 11 (10 seats), the same checks.
CLASS_SIZES = [pytest.param(12, (7, 11), id="12-students"),
               pytest.param(30, (7, 19), id="30-students", marks=pytest.mark.load)]


@pytest.mark.parametrize(("students", "bad_lines"), CLASS_SIZES)
def test_a_class_from_a_csv_with_two_bad_lines_and_who_may_act_on_its_seats(
        instances_allocation, celery_worker_process, client, students, bad_lines):
    """The roster's bad lines are named and nothing is made; without them every other student gets
    a seat, each with its own student's user data. A student drives their own seat (the call runs
    as the class's owner) and reaches no other; a TA shelves and unshelves every seat."""
    from allauth.account.models import EmailAddress
    from django.core.exceptions import ValidationError
    from django.urls import reverse

    from tests.classes.test_classes import roster
    from tests.factories import UserFactory

    allocation, pid = instances_allocation, instances_allocation.openstack_project_id
    admin = connection_get()
    admin.set_network_quotas(pid, floatingip=40)
    roles_before = {a.user["id"] for a in admin.identity.role_assignments(scope_project_id=pid) if a.user}
    today = datetime.date.today()
    first_bad, second_bad = bad_lines
    csv = roster(students, bad={first_bad: "student-seven-at-uni,Seven", second_bad: "student03@uni.example,Again"})
    seats = students - 2
    kwargs = dict(user=allocation.pi, allocation=allocation, template=ClassTemplate.objects.get(name="Ubuntu 24.04"),
                  name="big", title="A big class", starts_on=today, ends_on=today + datetime.timedelta(days=30))
    with pytest.raises(ValidationError) as refused:
        services.course_create(**kwargs, roster=csv)
    assert [m.split(":")[0] for m in refused.value.messages] == [f"Line {first_bad}", f"Line {second_bad}"]
    # the educator drops the two lines and sends it again
    course = services.course_create(**kwargs, roster="\n".join(
        line for n, line in enumerate(csv.splitlines(), start=1) if n not in bad_lines))
    assert course.seats.count() == seats
    started = time.monotonic()
    assert len(services.course_launch(user=allocation.pi, course=course)) == seats
    wait_for(lambda: all(s.shown_state == "ready" for s in seats_shown(course)), timeout=420, interval=3,
             message=f"all {seats} seats ready")
    servers = {s.name: s for s in nova_servers(pid) if s.name.startswith("big-")}
    assert len(servers) == seats and {s.status for s in servers.values()} == {"ACTIVE"}
    for seat in seats_shown(course):
        shown = admin.compute.get(f"/servers/{servers[seat.server_name].id}", microversion="2.3").json()["server"]
        data = yaml.safe_load(base64.b64decode(shown["OS-EXT-SRV-ATTR:user_data"]))
        assert [u["name"] for u in data["users"][1:]] == [seat.username]
    print(f"{seats} seats ready in {time.monotonic() - started:.0f} s")
    project_sync(allocation=allocation, full=True)

    # student A drives their own seat: the stop runs in Nova as the class's owner
    seat_a, seat_b = course.seats.order_by("username")[:2]
    student = UserFactory(email=seat_a.email)
    EmailAddress.objects.update_or_create(user=student, email=seat_a.email, defaults={"verified": True})
    client.force_login(student)
    page = client.get(reverse("classes:mine")).content.decode()
    assert page.count('data-testid="my-seat"') == 1 and seat_a.server_name in page and seat_b.server_name not in page
    client.post(reverse("classes:seat_act", args=[seat_a.pk, "stop"]))
    stop = CloudAction.objects.get(action="stop", requested_by=student)
    wait_for(lambda: CloudAction.objects.get(pk=stop.pk).state == "succeeded", timeout=120, interval=1,
             message="the student's stop to finish")
    server_a = servers[seat_a.server_name]
    assert admin.compute.get_server(server_a.id).status == "SHUTOFF"
    nova_stop = next(a for a in admin.compute.server_actions(server_a.id) if a.action == "stop")
    assert nova_stop.user_id == allocation.pi.keystone.keystone_user_id
    # and reaches nothing else: another seat, any server of the project, the class page
    other = allocation.instances.get(server_id=servers[seat_b.server_name].id)
    assert client.post(reverse("classes:seat_act", args=[seat_b.pk, "stop"])).status_code == 404
    assert client.get(reverse("instances:detail", args=[other.pk])).status_code == 404
    assert client.get(reverse("classes:detail", args=[course.pk])).status_code == 404
    # and no student holds a role in the project
    assert {a.user["id"] for a in admin.identity.role_assignments(scope_project_id=pid) if a.user} == roles_before

    # a TA shelves every seat, then unshelves every seat
    ta = UserFactory(email="ta@uni.example")
    EmailAddress.objects.update_or_create(user=ta, email=ta.email, defaults={"verified": True})
    services.instructor_add(user=allocation.pi, course=course, email=ta.email)
    client.force_login(ta)

    def nova_states():
        return {s.status for s in nova_servers(pid) if s.name.startswith("big-")}

    def settled():
        return not CloudAction.objects.filter(state__in=["queued", "running"]).exists()

    started = time.monotonic()
    client.post(reverse("classes:act", args=[course.pk]), {"which": "all", "action": "shelve"})
    assert CloudAction.objects.filter(action="shelve", requested_by=ta).count() == seats
    wait_for(lambda: settled() and nova_states() == {"SHELVED_OFFLOADED"}, timeout=420, interval=3,
             message="every seat shelved")
    print(f"{seats} seats shelved in {time.monotonic() - started:.0f} s")
    started = time.monotonic()
    client.post(reverse("classes:act", args=[course.pk]), {"which": "all", "action": "unshelve"})
    wait_for(lambda: settled() and nova_states() == {"ACTIVE"}, timeout=420, interval=3,
             message="every seat unshelved")
    print(f"{seats} seats unshelved in {time.monotonic() - started:.0f} s")
    assert not CloudAction.objects.filter(state="failed").exists()
