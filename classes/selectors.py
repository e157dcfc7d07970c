"""Reads for the class pages: an educator's classes, one class's seats (with their servers from the
mirror), a student's own seats, the cost preview."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from allauth.account.models import EmailAddress
from django.db.models import Q
from django.http import Http404
from django.utils import timezone

from allocations.charging import su_per_hour
from instances.models import Instance
from portal import crypto

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
        server_id__in=[sid for s in seats for sid in ([s.server_id] if s.server_id else
                                                      (s.launch.server_ids if s.launch else []))],
        deleted_at__isnull=True)}
    for seat in seats:
        launch = seat.launch
        seat.shown_state, seat.shown_error = seat.state, seat.error
        server_id = seat.server_id or (launch.server_ids[0] if launch and launch.server_ids else "")
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
    seats = _seat_view(list(course.seats.select_related("launch", "user")))
    counts = {state: sum(1 for s in seats if s.shown_state == state) for state in SeatState.values}
    waiting = [s for s in seats if s.shown_state in (SeatState.PENDING, SeatState.FAILED)]
    cost = course_cost(course=course, seats=len(waiting), vcpus=flavor_vcpus) if flavor_vcpus and waiting else None
    return {"course": course, "seats": seats, "counts": counts, "ready": counts[SeatState.READY],
            "launching": counts[SeatState.LAUNCHING] > 0, "waiting": len(waiting), "cost": cost}


@dataclass(frozen=True)
class CourseCost:
    seats: int
    per_seat_hour: Decimal
    hours: int

    @property
    def total(self) -> Decimal:
        return self.per_seat_hour * self.seats * self.hours


def course_cost(*, course: Course, seats: int, vcpus: int) -> CourseCost:
    """Seats × the flavor's rate × the hours from now (or the start) to the end of the last day."""
    start = max(timezone.localdate(), course.starts_on)
    hours = max(0, ((course.ends_on - start).days + 1) * 24)
    return CourseCost(seats=seats, per_seat_hour=su_per_hour(flavor_name=course.template.flavor_name, vcpus=vcpus),
                      hours=hours)


def seats_for_student(*, user) -> list[Seat]:
    """The person's own seats: bound to them, or on a roster under one of their verified addresses."""
    verified = list(EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True))
    seats = (Seat.objects.filter(Q(user=user) | Q(user__isnull=True, email__in=[e.lower() for e in verified]))
             .exclude(course__state=CourseState.DELETED).exclude(state=SeatState.REMOVED)
             .select_related("course__template", "launch"))
    seats = _seat_view(list(seats))
    for seat in seats:  # their own password, for the seat's Linux account (templates that give one)
        uses_password = seat.course.template.access in (AccessMethod.PASSWORD, AccessMethod.BOTH)
        seat.password = crypto.decrypt(seat.encrypted_password) if uses_password and seat.encrypted_password else ""
    return seats
