"""A class's life on the unit fake cloud: students drive only their own seat (through the class
owner's identity, recorded as theirs), instructors and TAs act on every seat, class hours shelve
and unshelve seats at the right times under a frozen clock, and the metered cost of a scheduled
week matches the preview; reminders and invitations are mailed; extending brings seats back."""
from __future__ import annotations

import dataclasses
import datetime
from datetime import UTC
from decimal import Decimal

import pytest
import yaml
from allauth.account.models import EmailAddress
from django.core import mail
from django.core.exceptions import ValidationError
from django.urls import reverse

from allocations import metering
from allocations.models import LedgerEntry
from allocations.scopes import member_scope
from classes import schedule, selectors, services
from classes.models import ClassTemplate, Course, Seat
from instances.models import CloudAction, Instance, LaunchRequest
from instances.services.actions import action_run, action_scope
from portal.cloud import compute
from portal.cloud.usage import ServerAction, ServerUsage
from tests.classes.test_classes import make_class
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
MONDAY = datetime.date(2026, 12, 7)


def ready(course, allocation, status="ACTIVE"):
    """Every seat launched and its server in the mirror."""
    services.course_launch(user=course.owner, course=course)
    for n, seat in enumerate(course.seats.order_by("username"), start=1):
        LaunchRequest.objects.filter(pk=seat.launch_id).update(state="succeeded", server_ids=[f"srv-{seat.username}"])
        Seat.objects.filter(pk=seat.pk).update(state="ready", server_id=f"srv-{seat.username}")
        Instance.objects.create(allocation=allocation, project_id=allocation.openstack_project_id,
                                server_id=f"srv-{seat.username}", name=seat.server_name, status=status,
                                flavor_name="m3.small", vcpus=2, image_id="img-ubuntu",
                                addresses=[{"addr": f"10.0.0.{n}", "kind": "fixed"}])
    return list(course.seats.order_by("username"))


def student_of(seat):
    student = UserFactory(email=seat.email)
    EmailAddress.objects.update_or_create(user=student, email=seat.email, defaults={"verified": True})
    return student


# --- who may act on a seat ------------------------------------------------------------------------

def test_a_student_starts_their_own_seat_as_the_class_owner_and_only_theirs(client, cloud, allocation, user):
    course = make_class(allocation, user, students=2)
    mine, theirs = ready(course, allocation, status="SHUTOFF")
    student = student_of(mine)
    client.force_login(student)
    page = client.get(reverse("classes:mine")).content.decode()
    assert page.count('data-testid="my-seat"') == 1 and mine.server_name in page and theirs.server_name not in page
    assert ">Start<" in page

    assert client.post(reverse("classes:seat_act", args=[mine.pk, "start"])).status_code == 302
    action = CloudAction.objects.get(target_id=mine.server_id)
    assert (action.action, action.requested_by, action.acting_as) == ("start", student, user)
    # the call runs with the owner's identity in the project: the student has none there
    assert action_scope(action).identity == member_scope(user=user, allocation=allocation).identity
    # another student's seat, the class page, the seat's instance page: not theirs to know of
    assert client.post(reverse("classes:seat_act", args=[theirs.pk, "start"])).status_code == 404
    assert client.get(reverse("classes:detail", args=[course.pk])).status_code == 404
    seat_instance = Instance.objects.get(server_id=mine.server_id)
    assert client.get(reverse("instances:detail", args=[seat_instance.pk])).status_code in (403, 404)
    # only start, stop and reboot
    assert client.post(reverse("classes:seat_act", args=[mine.pk, "delete"])).status_code == 302
    assert not CloudAction.objects.filter(action="delete").exists()
    mine.refresh_from_db()
    assert mine.last_seen_at is not None


def test_a_ta_added_by_email_acts_on_every_seat(client, cloud, allocation, user):
    course = make_class(allocation, user, students=3)
    ready(course, allocation)
    ta = UserFactory(email="ta@uni.example")
    EmailAddress.objects.update_or_create(user=ta, email=ta.email, defaults={"verified": True})
    with pytest.raises(ValidationError, match="No one has a confirmed portal account"):
        services.instructor_add(user=user, course=course, email="nobody@uni.example")
    services.instructor_add(user=user, course=course, email="TA@uni.example")
    client.force_login(ta)
    assert client.get(reverse("classes:detail", args=[course.pk])).status_code == 200
    client.post(reverse("classes:act", args=[course.pk]), {"which": "all", "action": "shelve"})
    shelves = CloudAction.objects.filter(action="shelve")
    assert shelves.count() == 3 and {(a.requested_by, a.acting_as) for a in shelves} == {(ta, user)}
    # a second shelve of every seat is refused seat by seat, with the reason on the page
    page = client.post(reverse("classes:act", args=[course.pk]), {"which": "all", "action": "shelve"},
                       follow=True).content.decode()
    assert "Not done on 3" in page and "still running" in page


def test_re_image_rebuilds_ticked_seats_from_the_template_with_their_own_user_data(cloud, allocation, user):
    course = make_class(allocation, user, students=3)
    first, second, third = ready(course, allocation)
    outcome = services.seats_act(user=user, course=course, action="rebuild", seat_ids=[first.pk, third.pk])
    assert sorted(outcome.asked) == sorted([first.username, third.username]) and not outcome.refused
    for seat in (first, third):
        row = CloudAction.objects.get(target_id=seat.server_id)
        assert row.action == "rebuild" and row.params["image_id"] == "img-ubuntu"
        assert yaml.safe_load(row.params["user_data"])["users"][1]["name"] == seat.username
    assert not CloudAction.objects.filter(target_id=second.server_id).exists()
    # once the re-image is done, the portal no longer holds the student's password hash
    rebuilt = []
    made = cloud.add(first.server_name)  # the seat's server in the (faked) cloud
    cloud.servers[first.server_id] = dataclasses.replace(cloud.servers.pop(made.id), id=first.server_id)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(compute, "server_rebuild", lambda **kw: rebuilt.append(kw["user_data"]))
        row = action_run(action_id=CloudAction.objects.get(target_id=first.server_id).pk)
    assert row.state == "succeeded", row.error
    assert "passwd" in rebuilt[0] and "user_data" not in CloudAction.objects.get(pk=row.pk).params


def test_deleting_a_seat_removes_it_from_the_class(cloud, allocation, user):
    course = make_class(allocation, user, students=2)
    first, _ = ready(course, allocation)
    services.seats_act(user=user, course=course, action="delete", seat_ids=[first.pk])
    first.refresh_from_db()
    assert first.state == "removed" and CloudAction.objects.get(target_id=first.server_id).action == "delete"
    assert [s.username for s in selectors.course_page(course=course, flavor_vcpus=2)["seats"]] == ["student02"]


def test_students_added_to_a_running_class_launch_at_once_and_are_invited(client, cloud, allocation, user):
    course = make_class(allocation, user, students=1)
    ready(course, allocation)
    client.force_login(user)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("django.db.transaction.on_commit", lambda fn, **kw: fn())
        client.post(reverse("classes:roster_add", args=[course.pk]), {"roster": "late@uni.example,Late Comer"})
    late = course.seats.get(email="late@uni.example")
    assert late.state == "launching" and late.launch.name == "bio101-late" and late.invited_at is not None
    [invite] = [m for m in mail.outbox if "late@uni.example" in m.to]
    assert "/accounts/signup/?email=late%40uni.example" in invite.body and "/classes/mine/" in invite.body


def test_a_seat_binds_to_the_student_on_sign_in_with_the_roster_address(client, cloud, allocation, user):
    course = make_class(allocation, user, students=1)
    [seat] = course.seats.all()
    student = student_of(seat)
    client.force_login(student)  # user_logged_in
    seat.refresh_from_db()
    assert seat.user == student


# --- class hours ------------------------------------------------------------------------------------

def test_class_hours_are_parsed_and_bad_ones_are_named():
    rows = [s.as_json() for s in schedule.schedule_parse("Wed 13:00-15:00, monday 9:00 - 10:30")]
    assert rows == [{"day": 0, "start": "09:00", "end": "10:30"}, {"day": 2, "start": "13:00", "end": "15:00"}]
    with pytest.raises(ValidationError) as bad:
        schedule.schedule_parse("Mon 10:00-09:00, Fri 25:00-26:00, someday")
    assert len(bad.value.messages) == 3 and "must end after it starts" in bad.value.messages[0]


def scheduled_class(allocation, user, students=3):
    course = make_class(allocation, user, students=students,
                        schedule=[s.as_json() for s in schedule.schedule_parse("Mon 09:00-10:30, Wed 13:00-15:00")],
                        timezone_name="UTC")
    Course.objects.filter(pk=course.pk).update(starts_on=MONDAY, ends_on=MONDAY + datetime.timedelta(days=6))
    course.refresh_from_db()
    return course


def at(day: int, hh: int, mm: int = 0) -> datetime.datetime:
    return datetime.datetime.combine(MONDAY + datetime.timedelta(days=day), datetime.time(hh, mm), tzinfo=UTC)


class Cloud:
    """What Nova does with the portal's actions: each finishes at once, in the mirror, in the
    listing the meter reads and in the action log (with its time)."""

    def __init__(self, monkeypatch, allocation, start):
        self.allocation, self.log = allocation, {}
        self.servers = {i.server_id: ServerUsage(id=i.server_id, name=i.name, status=i.status, flavor_name="m3.small",
                                                 vcpus=2, created_at=start, user_id="", updated_at=start)
                        for i in Instance.objects.filter(allocation=allocation)}
        monkeypatch.setattr("portal.cloud.usage.server_usage_list", lambda **kw: list(self.servers.values()))
        monkeypatch.setattr("portal.cloud.usage.server_action_list", lambda *, scope, server_id, changes_since=None: [
            a for a in self.log.get(server_id, []) if changes_since is None or a.finish_time >= changes_since])

    def carry_out(self, now) -> list[tuple[str, str]]:
        done = []
        finals = {"shelve": "SHELVED_OFFLOADED", "unshelve": "ACTIVE", "start": "ACTIVE", "stop": "SHUTOFF"}
        for row in CloudAction.objects.filter(state="queued"):
            status = finals[row.action]
            Instance.objects.filter(server_id=row.target_id).update(status=status)
            self.servers[row.target_id] = ServerUsage(**{**self.servers[row.target_id].__dict__, "status": status,
                                                         "updated_at": now})
            name = "shelveOffload" if row.action == "shelve" else row.action
            self.log.setdefault(row.target_id, []).append(ServerAction(
                action=name, request_id=f"req-{row.pk}", failed=False, start_time=now, finish_time=now, events=1))
            CloudAction.objects.filter(pk=row.pk).update(state="succeeded")
            done.append((row.action, row.target_id))
        return done


def test_class_hours_shelve_after_each_session_and_unshelve_15_minutes_before(cloud, allocation, user, time_machine,
                                                                              monkeypatch):
    course = scheduled_class(allocation, user)
    time_machine.move_to(at(0, 0), tick=False)
    ready(course, allocation)
    nova = Cloud(monkeypatch, allocation, at(0, 0))

    def beat(when):
        time_machine.move_to(when, tick=False)
        services.courses_schedule(now=when)
        return sorted({action for action, _ in nova.carry_out(when)})

    assert beat(at(0, 0)) == ["shelve"]  # launched before the first session: shelved until it
    assert beat(at(0, 8, 40)) == []
    assert beat(at(0, 8, 45)) == ["unshelve"]  # 15 minutes before Monday 09:00
    assert set(Instance.objects.values_list("status", flat=True)) == {"ACTIVE"}
    assert beat(at(0, 10, 25)) == []
    assert beat(at(0, 10, 30)) == ["shelve"]
    assert beat(at(2, 12, 40)) == []
    assert beat(at(2, 12, 45)) == ["unshelve"]
    assert beat(at(2, 15, 0)) == ["shelve"]
    assert set(Instance.objects.values_list("status", flat=True)) == {"SHELVED_OFFLOADED"}


def test_the_metered_cost_of_a_scheduled_week_equals_the_preview(cloud, allocation, user, time_machine, monkeypatch):
    course = scheduled_class(allocation, user, students=3)
    time_machine.move_to(at(0, 0), tick=False)
    ready(course, allocation)
    preview = selectors.course_cost(course=course, seats=3, vcpus=2, now=at(0, 0))
    assert preview.hours == Decimal("4.00")  # 1 h 30 + 2 h of sessions, each from 15 minutes before
    nova = Cloud(monkeypatch, allocation, at(0, 0))
    when = at(0, 0)
    while when < at(7, 0):  # the beat, every 5 minutes for the whole week
        time_machine.move_to(when, tick=False)
        services.courses_schedule(now=when)
        nova.carry_out(when)
        when += datetime.timedelta(minutes=5)
    metering.allocation_meter(allocation=allocation, now=at(7, 0))
    charged = -sum(e.sus for e in LedgerEntry.objects.filter(allocation=allocation, kind="usage"))
    assert abs(charged - preview.total) <= preview.total / 100, (charged, preview.total)


def test_a_class_without_hours_runs_every_day_of_the_class_only(cloud, allocation, user):
    course = make_class(allocation, user, students=1)
    Course.objects.filter(pk=course.pk).update(starts_on=MONDAY, ends_on=MONDAY)
    course.refresh_from_db()
    assert services.course_phase(course=course, now=at(0, 3)) == "on"
    assert services.course_phase(course=course, now=at(-1, 23)) == "off"
    assert selectors.course_cost(course=course, seats=2, vcpus=2, now=at(0, 12)).hours == Decimal("12.00")


# --- the end of a class: reminders and extending ------------------------------------------------------

def test_reminders_go_three_days_and_one_day_before_shelving_and_extending_starts_over(cloud, allocation, user):
    course = make_class(allocation, user, students=2)
    ready(course, allocation)
    shelve_day = course.ends_on + datetime.timedelta(days=1)
    mail.outbox.clear()
    services.courses_end(today=shelve_day - datetime.timedelta(days=4))
    assert not mail.outbox
    services.courses_end(today=shelve_day - datetime.timedelta(days=3))
    assert sorted(m.to[0] for m in mail.outbox) == sorted(["student01@uni.example", "student02@uni.example",
                                                           user.email])
    assert all("shelved in 3 days" in m.subject for m in mail.outbox)
    services.courses_end(today=shelve_day - datetime.timedelta(days=2))
    assert len(mail.outbox) == 3  # once each
    services.courses_end(today=shelve_day - datetime.timedelta(days=1))
    assert len(mail.outbox) == 6 and "shelved tomorrow" in mail.outbox[-1].subject
    # the instructor extends by a week: the class runs on and reminders start over
    course.refresh_from_db()
    services.course_extend(user=user, course=course, ends_on=course.ends_on + datetime.timedelta(days=7))
    course.refresh_from_db()
    assert course.reminders_sent == [] and course.state == "running"
    with pytest.raises(ValidationError, match="cannot be in the past"):
        services.course_extend(user=user, course=course, ends_on=datetime.date(2020, 1, 1))


def test_deletion_is_announced_and_an_ended_class_extended_runs_again(cloud, allocation, user):
    course = make_class(allocation, user, students=1)
    ready(course, allocation)
    services.courses_end(today=course.ends_on + datetime.timedelta(days=1))
    course.refresh_from_db()
    assert course.state == "ended"
    mail.outbox.clear()
    delete_day = course.ends_on + datetime.timedelta(days=course.delete_after_days + 1)
    services.courses_end(today=delete_day - datetime.timedelta(days=1))
    assert {m.subject.split(": ", 1)[1] for m in mail.outbox} == {"class machines deleted tomorrow"}
    assert ClassTemplate.objects.exists()


def test_a_class_bigger_than_the_public_ip_quota_is_told_before_any_seat_is_made(cloud, allocation, user):
    course = make_class(allocation, user, students=12)  # the fake project holds 10 public IPs
    with pytest.raises(services.ClassCannotLaunch) as refused:
        services.course_launch(user=user, course=course)
    assert "12 seats do not fit the project's quota: 12 instances need 12 public IPs; 10 of the project's 10 " \
           "are free." in str(refused.value)
    assert not LaunchRequest.objects.exists() and set(course.seats.values_list("state", flat=True)) == {"pending"}


def test_a_student_not_launched_yet_is_taken_off_the_roster_without_the_cloud(cloud, allocation, user):
    course = make_class(allocation, user, students=2)
    first = course.seats.get(username="student01")
    assert services.seats_act(user=user, course=course, action="delete", seat_ids=[first.pk]).asked == ["student01"]
    first.refresh_from_db()
    assert first.state == "removed" and not CloudAction.objects.exists()
    assert [s.username for s in services.course_launch(user=user, course=course)] == ["student02"]
