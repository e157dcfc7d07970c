"""Reads for the class pages: an educator's classes, one class's seats (with their servers from the
mirror), a student's own seats, the cost preview."""
from __future__ import annotations

import datetime
from dataclasses import dataclass
from decimal import Decimal

from allauth.account.models import EmailAddress
from django.db.models import Q, Sum
from django.http import Http404
from django.utils import timezone

from allocations.charging import su_per_hour
from allocations.models import LedgerEntry, LedgerKind
from instances.models import Instance
from portal import crypto

from . import schedule
from .models import AccessMethod, ClassTemplate, Course, CourseState, Seat, SeatState


def template_list_for_user(*, user):
    return ClassTemplate.objects.filter(Q(builtin=True) | Q(created_by=user))


def course_list_for_user(*, user):
    """The classes the person teaches: as the owner, an instructor or a TA."""
    return (Course.objects.filter(Q(owner=user) | Q(instructors=user)).exclude(state=CourseState.DELETED)
            .select_related("allocation", "template").distinct())


def course_get_for_instructor(*, user, pk: int) -> Course:
    course = course_list_for_user(user=user).filter(pk=pk).first()
    if course is None:
        raise Http404("No such class.")
    return course


def _seat_view(seats: list[Seat]) -> list[Seat]:
    """Each seat with what its launch and server say now (read, not written: a launch's outcome
    shows on the seat at once), its address and the ssh command."""
    instances = {i.server_id: i for i in Instance.objects.filter(
        server_id__in=[sid for s in seats for sid in s.server_ids],
        deleted_at__isnull=True)}
    for seat in seats:
        launch = seat.launch
        seat.shown_state, seat.shown_error = seat.state, seat.error
        server_id = next(iter(seat.server_ids), "")
        if seat.state == SeatState.LAUNCHING and launch is not None:
            if launch.state == "succeeded":
                seat.shown_state = SeatState.READY
            elif launch.state == "failed":
                seat.shown_state, seat.shown_error = SeatState.FAILED, launch.error
        seat.shown_label = SeatState(seat.shown_state).label
        seat.instance = instances.get(server_id)
        seat.address = next(iter(seat.instance.floating_ips), "") if seat.instance and seat.instance.floating_ips \
            else (seat.instance.fixed_ips[0] if seat.instance and seat.instance.fixed_ips else "")
        seat.ssh = f"ssh {seat.username}@{seat.address}" if seat.address else ""
    return seats


def course_page(*, course: Course, flavor_vcpus: int | None) -> dict:
    """`flavor_vcpus`: the template flavor's vCPUs as the cloud says (None: no cost preview)."""
    from .services import INSTRUCTOR_ACTIONS

    seats = _seat_view(list(course.seats.exclude(state=SeatState.REMOVED).select_related("launch", "user")))
    counts = {state: sum(1 for s in seats if s.shown_state == state) for state in SeatState.values}
    waiting = [s for s in seats if s.shown_state in (SeatState.PENDING, SeatState.FAILED)]
    cost = course_cost(course=course, seats=len(waiting), vcpus=flavor_vcpus) if flavor_vcpus and waiting else None
    acting = {s.instance.server_id for s in seats if s.instance and s.instance.task_state}
    return {"course": course, "seats": seats, "counts": counts, "ready": counts[SeatState.READY],
            "launching": counts[SeatState.LAUNCHING] > 0 or bool(acting) or _open_actions(seats),
            "waiting": len(waiting), "cost": cost,
            "hours": schedule.schedule_text(course.schedule), "sus_used": course_sus_used(course=course),
            "bulk_actions": INSTRUCTOR_ACTIONS, "instructors": list(course.instructors.order_by("email")),
            "next_window": _next_window(course)}


def _open_actions(seats: list[Seat]) -> bool:
    from instances.models import CloudAction

    ids = [s.instance.server_id for s in seats if s.instance]
    return bool(ids) and CloudAction.objects.filter(target_id__in=ids, state__in=["queued", "running"]).exists()


def _next_window(course: Course):
    if not course.schedule or course.state != CourseState.RUNNING:
        return None
    return schedule.next_window(rows=course.schedule, tz=course.timezone, first_day=course.starts_on,
                                last_day=course.ends_on, now=timezone.now())


def course_sus_used(*, course: Course) -> Decimal:
    """What the class's seats have cost so far: their servers' usage rows in the ledger."""
    ids = [i for s in course.seats.select_related("launch") for i in s.server_ids]
    used = LedgerEntry.objects.filter(allocation=course.allocation, kind=LedgerKind.USAGE,
                                      resource_id__in=ids).aggregate(total=Sum("sus"))["total"]
    return -(used or Decimal(0))


@dataclass(frozen=True)
class CourseCost:
    seats: int
    per_seat_hour: Decimal
    hours: Decimal
    scheduled: bool  # hours are class hours (seats shelved outside them), not whole days

    @property
    def total(self) -> Decimal:
        return self.per_seat_hour * self.seats * self.hours


def course_cost(*, course: Course, seats: int, vcpus: int, now=None) -> CourseCost:
    """Seats × the flavor's rate × the hours they run from now (or the first day) to the end of the
    last day: the class hours (each session from 15 minutes before it) when it has a schedule,
    whole days otherwise."""
    from zoneinfo import ZoneInfo

    now = now or timezone.now()
    zone = ZoneInfo(course.timezone)
    if course.schedule:
        hours = schedule.scheduled_hours(rows=course.schedule, tz=course.timezone, first_day=course.starts_on,
                                         last_day=course.ends_on, since=now)
    else:
        start = max(now, datetime.datetime.combine(course.starts_on, datetime.time.min, tzinfo=zone))
        end = datetime.datetime.combine(course.ends_on + datetime.timedelta(days=1), datetime.time.min, tzinfo=zone)
        hours = max(Decimal(0), Decimal((end - start).total_seconds()) / Decimal(3600))
    return CourseCost(seats=seats, per_seat_hour=su_per_hour(flavor_name=course.template.flavor_name, vcpus=vcpus),
                      hours=hours.quantize(Decimal("0.01")), scheduled=bool(course.schedule))


def seat_get_for_student(*, user, pk: int) -> Seat:
    """One of the person's own seats, or 404 (another student's seat is not theirs to know of)."""
    seat = next((s for s in _student_seats(user) if s.pk == pk), None)
    if seat is None:
        raise Http404("No such machine.")
    return seat


def _student_seats(user):
    verified = list(EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True))
    return (Seat.objects.filter(Q(user=user) | Q(user__isnull=True, email__in=[e.lower() for e in verified]))
            .exclude(course__state=CourseState.DELETED).exclude(state=SeatState.REMOVED)
            .select_related("course__template", "course__owner", "launch"))


def seats_for_student(*, user) -> list[Seat]:
    """The person's own seats: bound to them, or on a roster under one of their verified addresses."""
    from instances.models import CloudAction
    from instances.services import action_refusal

    from .services import STUDENT_ACTIONS

    seats = _seat_view(list(_student_seats(user)))
    open_actions = dict(CloudAction.objects.filter(
        target_id__in=[s.instance.server_id for s in seats if s.instance], state__in=["queued", "running"])
        .values_list("target_id", "action"))
    for seat in seats:  # their own password, for the seat's Linux account (templates that give one)
        uses_password = seat.course.template.access in (AccessMethod.PASSWORD, AccessMethod.BOTH)
        seat.password = crypto.decrypt(seat.encrypted_password) if uses_password and seat.encrypted_password else ""
        running = seat.course.state == CourseState.RUNNING
        seat.pending = open_actions.get(seat.instance.server_id, "") if seat.instance else ""
        seat.actions = [] if seat.pending else [
            (name, label) for name, label in STUDENT_ACTIONS.items()
            if running and seat.instance and not action_refusal(instance=seat.instance, action=name)]
        seat.busy = bool(seat.pending or (seat.instance and seat.instance.task_state))
        seat.next_window = _next_window(seat.course)
    return seats
