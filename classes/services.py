"""Writes for classes: the roster (all lines valid, or nothing made), launching every seat, and
following each seat's launch.

Seats are launched through `instances.services.instance_launch` as the class's owner (a member of
its allocation, whose Keystone identity makes the servers), one launch per seat, so they launch
concurrently on the cloud queue, each idempotent, each with its student's user data; a failed seat
is launched again alone. The student is never a member of the project.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction

from allocations.scopes import member_scope
from instances.models import LaunchRequest
from instances.selectors import flavor_list_for, launch_options
from instances.services import instance_launch
from portal import crypto

from . import rendering
from .models import ClassTemplate, Course, CourseState, Seat, SeatState

MAX_ROSTER = 500


@dataclass(frozen=True)
class RosterLine:
    line: int
    email: str
    name: str


def roster_parse(text: str, *, existing: set[str] = frozenset()) -> tuple[list[RosterLine], list[str]]:
    """Lines of `email[,name]` (a header line "email,name" is skipped, blank lines too). Returns the
    good lines and the errors, each naming its line number; `existing`: addresses already seated."""
    good, errors, seen = [], [], {e.lower() for e in existing}
    for number, row in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [c.strip() for c in row]
        if not any(cells) or (number == 1 and cells[0].lower() in ("email", "e-mail", "address")):
            continue
        email, name = cells[0], ",".join(cells[1:]).strip()
        try:
            validate_email(email)
        except ValidationError:
            errors.append(f"Line {number}: “{email}” is not an email address.")
            continue
        if email.lower() in seen:
            errors.append(f"Line {number}: {email} is already on the roster.")
            continue
        seen.add(email.lower())
        good.append(RosterLine(line=number, email=email.lower(), name=name[:200]))
    if len(good) > MAX_ROSTER:
        errors.append(f"A class holds up to {MAX_ROSTER} seats; the roster has {len(good)}.")
    return good, errors


def course_create(*, user, allocation, template: ClassTemplate, name: str, title: str, starts_on, ends_on,
                  roster: str, delete_after_days: int = 14) -> Course:
    """Record a class and its seats from the roster. Every line must be valid: otherwise a
    ValidationError lists the bad lines and nothing is made. Raises NoCloudAccess when the person
    may not make servers in the allocation."""
    member_scope(user=user, allocation=allocation, creating=True)
    lines, errors = roster_parse(roster)
    if not lines and not errors:
        errors.append("The roster is empty: one line per student, email[,name].")
    if ends_on < starts_on:
        errors.append("The class must end on or after its first day.")
    if Course.objects.filter(allocation=allocation, name=name).exists():
        errors.append(f"The allocation already has a class named “{name}”.")
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        course = Course.objects.create(allocation=allocation, template=template, name=name, title=title,
                                       owner=user, starts_on=starts_on, ends_on=ends_on,
                                       delete_after_days=delete_after_days)
        _seats_add(course, lines)
    return course


def roster_add(*, user, course: Course, roster: str) -> list[Seat]:
    """Add students to a class (nothing added if any line is bad); new seats launch with the next
    "launch" if the class is running."""
    member_scope(user=user, allocation=course.allocation)
    lines, errors = roster_parse(roster, existing=set(course.seats.values_list("email", flat=True)))
    if errors:
        raise ValidationError(errors)
    with transaction.atomic():
        return _seats_add(course, lines)


def _seats_add(course: Course, lines: list[RosterLine]) -> list[Seat]:
    taken = set(course.seats.values_list("username", flat=True))
    seats = []
    for entry in lines:
        username = rendering.username_for(entry.email, taken)
        taken.add(username)
        seats.append(Seat(course=course, email=entry.email, name=entry.name, username=username, line=entry.line,
                          encrypted_password=crypto.encrypt(rendering.password_new())))
    return Seat.objects.bulk_create(seats)


class ClassCannotLaunch(Exception):
    """Words for the instructor: the template's image or flavor is not there for the project."""


def course_launch(*, user, course: Course, seats: list[Seat] | None = None) -> list[Seat]:
    """Launch the seats not launched yet (or those given, e.g. one failed seat again), each its own
    launch request carrying its student's user data. Raises NoCloudAccess, ClassCannotLaunch, and
    InsufficientBalance (from the first seat's preflight) with words for the page."""
    member_scope(user=user, allocation=course.allocation, creating=True)
    owner, allocation, template = course.owner, course.allocation, course.template
    flavor = next((f for f in flavor_list_for(user=owner, allocation=allocation) if f.name == template.flavor_name),
                  None)
    if flavor is None:
        raise ClassCannotLaunch(f"The flavor {template.flavor_name} is not available to this allocation.")
    image = next((i for i in launch_options(user=owner, allocation=allocation)["images"]
                  if i.name == template.image_name), None)
    if image is None:
        raise ClassCannotLaunch(f"The image {template.image_name} is not available to this allocation.")
    todo = seats if seats is not None else list(course.seats.filter(state__in=[SeatState.PENDING, SeatState.FAILED]))
    launched = []
    for seat in todo:
        keys = [k.public_key for k in seat.user.ssh_keys.all()] if seat.user else []
        user_data = rendering.seat_user_data(course, seat, ssh_keys=keys,
                                             password=crypto.decrypt(seat.encrypted_password))
        with transaction.atomic():
            launch = instance_launch(user=owner, allocation=allocation, flavor=flavor, image_id=image.id,
                                     image_name=image.name, name=seat.server_name, user_data=user_data,
                                     boot_volume_gb=template.volume_gb, assign_floating_ip=True)
            Seat.objects.filter(pk=seat.pk).update(state=SeatState.LAUNCHING, launch=launch, error="", server_id="")
        launched.append(seat)
    Course.objects.filter(pk=course.pk, state=CourseState.DRAFT).update(state=CourseState.RUNNING)
    return launched


def seats_follow(*, course: Course) -> int:
    """Bring launching seats up to date with their launches (the pages call it; it reads the
    database only). Returns how many changed."""
    changed = 0
    for seat in course.seats.filter(state=SeatState.LAUNCHING).exclude(launch=None).select_related("launch"):
        launch: LaunchRequest = seat.launch
        if launch.state == "succeeded":
            Seat.objects.filter(pk=seat.pk).update(state=SeatState.READY, server_id=(launch.server_ids or [""])[0])
            changed += 1
        elif launch.state == "failed":
            Seat.objects.filter(pk=seat.pk).update(state=SeatState.FAILED, error=launch.error)
            changed += 1
    return changed


# --- The end of a class: seats shelved after the last day, deleted `delete_after_days` later ------

def _seat_instance(seat: Seat):
    from instances.models import Instance

    ids = [seat.server_id] if seat.server_id else list(seat.launch.server_ids if seat.launch else [])
    return Instance.objects.filter(server_id__in=ids, deleted_at__isnull=True).select_related("allocation").first()


def courses_end(*, today) -> dict[str, int]:
    """Beat: shelve the seats of classes whose last day has passed (0 SU while shelved; the class
    becomes "ended"), and delete them `delete_after_days` after (the class becomes "deleted" once
    none is left). Actions go through the instances' action path as the class's owner; a seat
    with an action still running is tried again at the next run. Returns what it asked for."""
    import datetime

    from instances.services import ActionNotAllowed, instance_act

    asked = {"shelve": 0, "delete": 0}
    for course in Course.objects.filter(state__in=[CourseState.RUNNING, CourseState.ENDED], ends_on__lt=today):
        deleting = today > course.ends_on + datetime.timedelta(days=course.delete_after_days)
        action = "delete" if deleting else "shelve"
        left = 0
        for seat in course.seats.exclude(state=SeatState.REMOVED).select_related("launch"):
            instance = _seat_instance(seat)
            if instance is None:
                if deleting:
                    Seat.objects.filter(pk=seat.pk).update(state=SeatState.REMOVED)
                continue
            if action == "shelve" and instance.status in ("SHELVED", "SHELVED_OFFLOADED"):
                continue
            left += 1
            try:
                instance_act(user=course.owner, instance=instance, action=action)
                asked[action] += 1
            except ActionNotAllowed:
                pass  # an action of its own is running; the next run asks again
        if deleting and not left:
            Course.objects.filter(pk=course.pk).update(state=CourseState.DELETED)
        elif course.state == CourseState.RUNNING:
            Course.objects.filter(pk=course.pk).update(state=CourseState.ENDED)
    return asked
