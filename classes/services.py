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

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from allocations.scopes import member_scope
from instances.models import LaunchRequest
from instances.quota import launch_refusals
from instances.selectors import flavor_list_for, launch_options, project_quota_for
from instances.services import instance_launch_many
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
                  roster: str, delete_after_days: int = 14, schedule: list[dict] | None = None,
                  timezone_name: str = "") -> Course:
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
                                       delete_after_days=delete_after_days, schedule=schedule or [],
                                       timezone=timezone_name or settings.TIME_ZONE)
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


def _template_image(course: Course):
    image = next((i for i in launch_options(user=course.owner, allocation=course.allocation)["images"]
                  if i.name == course.template.image_name), None)
    if image is None:
        raise ClassCannotLaunch(f"The image {course.template.image_name} is not available to this allocation.")
    return image


def _seat_user_data(course: Course, seat: Seat) -> str:
    keys = [k.public_key for k in seat.user.ssh_keys.all()] if seat.user else []
    return rendering.seat_user_data(course, seat, ssh_keys=keys, password=crypto.decrypt(seat.encrypted_password))


def class_group_name(course: Course) -> str:
    return f"class-{course.name}"


def _class_groups(course: Course) -> list[str] | None:
    """The security groups a seat gets: the project's usual ones, plus the class's own group opening
    the template's ports (made or completed here) when it has any. None: the launch's default."""
    ports = sorted({int(p) for p in course.template.ports or []})
    if not ports:
        return None
    from instances.services.launch import security_group_ensure_default
    from portal.cloud import network

    scope = member_scope(user=course.owner, allocation=course.allocation, creating=True)
    name = class_group_name(course)
    group = next((g for g in network.security_group_list(scope=scope) if g.name == name), None) or \
        network.security_group_create(scope=scope, name=name, description=f"Ports of the class {course}")
    have = {r.port_min for r in group.rules if r.direction == "ingress" and r.protocol == "tcp"}
    for port in ports:
        if port not in have:
            network.security_group_rule_create(scope=scope, group_id=group.id, protocol="tcp", port=port)
    return [security_group_ensure_default(scope=scope), name]


def course_launch(*, user, course: Course, seats: list[Seat] | None = None, base_url: str = "") -> list[Seat]:
    """Launch the seats not launched yet (or those given, e.g. one failed seat again), each its own
    launch request carrying its student's user data, and mail each student not invited yet (links
    on `base_url`, the portal's address as the educator reached it).
    Raises NoCloudAccess, ClassCannotLaunch, and InsufficientBalance (from the first seat's
    preflight) with words for the page."""
    from . import notifications

    member_scope(user=user, allocation=course.allocation, creating=True)
    owner, allocation, template = course.owner, course.allocation, course.template
    flavor = next((f for f in flavor_list_for(user=owner, allocation=allocation) if f.name == template.flavor_name),
                  None)
    if flavor is None:
        raise ClassCannotLaunch(f"The flavor {template.flavor_name} is not available to this allocation.")
    image = _template_image(course)
    todo = seats if seats is not None else list(course.seats.filter(state__in=[SeatState.PENDING, SeatState.FAILED]))
    if not todo:
        return []
    refusals = launch_refusals(quota=project_quota_for(user=owner, allocation=allocation), flavor=flavor,
                               count=len(todo), new_volume_gb=template.volume_gb, public_ip=True)
    if refusals:  # one seat each: a class that does not fit is told before any seat is made
        raise ClassCannotLaunch(f"{len(todo)} seat{'s' if len(todo) != 1 else ''} do not fit the project's quota: "
                                + " ".join(refusals.values())
                                + " Ask your cloud's admins to raise the quota, or launch fewer seats.")
    groups = _class_groups(course)
    with transaction.atomic():
        launches = instance_launch_many(
            user=owner, allocation=allocation, flavor=flavor, image_id=image.id, image_name=image.name,
            servers=[(seat.server_name, _seat_user_data(course, seat)) for seat in todo],
            boot_volume_gb=template.volume_gb, security_groups=groups, assign_floating_ip=True)
        for seat, launch in zip(todo, launches, strict=True):
            seat.state, seat.launch, seat.error, seat.server_id = SeatState.LAUNCHING, launch, "", ""
        Seat.objects.bulk_update(todo, ["state", "launch", "error", "server_id"])
    launched = todo
    Course.objects.filter(pk=course.pk, state=CourseState.DRAFT).update(state=CourseState.RUNNING)
    uninvited = [s for s in launched if s.invited_at is None and s.user_id is None]
    if uninvited:
        transaction.on_commit(lambda: notifications.invitations_send(course, uninvited, base_url))
        Seat.objects.filter(pk__in=[s.pk for s in uninvited]).update(invited_at=timezone.now())
    return launched


def seats_follow(*, course: Course) -> int:
    """Bring launching seats up to date with their launches (the pages call it; it reads the
    database only). Returns how many changed."""
    done = []
    for seat in course.seats.filter(state=SeatState.LAUNCHING).exclude(launch=None).select_related("launch"):
        launch: LaunchRequest = seat.launch
        if launch.state == "succeeded":
            Seat.objects.filter(pk=seat.pk).update(state=SeatState.READY, server_id=(launch.server_ids or [""])[0])
            done.append(launch.pk)
        elif launch.state == "failed":
            Seat.objects.filter(pk=seat.pk).update(state=SeatState.FAILED, error=launch.error)
            done.append(launch.pk)
    # A finished launch's user data held the student's password hash and keys: Nova has it now (a
    # seat launched again gets user data anew), so the portal's copy goes.
    LaunchRequest.objects.filter(pk__in=done).exclude(user_data="").update(user_data="")
    return len(done)


# --- Acting on seats: a student on their own, an instructor on all or some ---------------------

# What a student may do to their own seat, and what an instructor may do to any.
STUDENT_ACTIONS = {"start": "Start", "stop": "Stop", "reboot_soft": "Reboot"}
INSTRUCTOR_ACTIONS = {"start": "Start", "stop": "Stop", "shelve": "Shelve", "unshelve": "Unshelve",
                      "reboot_soft": "Reboot", "rebuild": "Re-image", "delete": "Delete"}


def _seat_instance(seat: Seat):
    from instances.models import Instance

    ids = seat.server_ids
    return Instance.objects.filter(server_id__in=ids, deleted_at__isnull=True).select_related("allocation").first()


def _seat_act(*, user, course: Course, seat: Seat, action: str, params: dict | None = None):
    """One action on a seat's server, asked for by `user` (recorded as theirs), carried out with the
    class owner's identity in the project. Raises ActionNotAllowed with words for the page."""
    from instances.services import ActionNotAllowed, instance_act

    instance = _seat_instance(seat)
    if instance is None:
        raise ActionNotAllowed("The machine is not there yet." if seat.state in (SeatState.PENDING,
                               SeatState.LAUNCHING) else "The machine is gone.")
    if action == "rebuild":
        params = {"image_id": _template_image(course).id, "user_data": _seat_user_data(course, seat)}
    row = instance_act(user=user, instance=instance, action=action, params=params, acting_as=course.owner)
    if action == "delete":
        Seat.objects.filter(pk=seat.pk).update(state=SeatState.REMOVED)
    return row


def seat_act(*, user, seat: Seat, action: str):
    """A student's start, stop or reboot of their own seat (the caller found it among theirs)."""
    from instances.services import ActionNotAllowed

    if action not in STUDENT_ACTIONS:
        raise ActionNotAllowed("Students can start, stop and reboot their machine.")
    if seat.course.state not in (CourseState.RUNNING,):
        raise ActionNotAllowed("The class has ended; ask your instructor to extend it.")
    row = _seat_act(user=user, course=seat.course, seat=seat, action=action)
    Seat.objects.filter(pk=seat.pk).update(last_seen_at=timezone.now())
    return row


@dataclass
class BulkOutcome:
    asked: list[str]
    refused: list[str]  # "<username>: why"

    @property
    def summary(self) -> str:
        parts = [f"Asked for {len(self.asked)} seat{'s' if len(self.asked) != 1 else ''}."] if self.asked else []
        if self.refused:
            parts.append(f"Not done on {len(self.refused)}: " + "; ".join(self.refused[:5])
                         + (" …" if len(self.refused) > 5 else ""))
        return " ".join(parts) or "No seat was chosen."


def seats_act(*, user, course: Course, action: str, seat_ids: list[int] | None = None) -> BulkOutcome:
    """An instructor's action on the chosen seats (None: every seat with a machine). Each seat is
    one action row of its own: a seat that cannot take it now is named with the reason."""
    from allocations.charging import InsufficientBalance
    from instances.services import ActionNotAllowed

    if action not in INSTRUCTOR_ACTIONS:
        raise ValidationError("Choose an action.")
    seats = course.seats.exclude(state=SeatState.REMOVED).select_related("launch", "user")
    if seat_ids is not None:
        seats = seats.filter(pk__in=seat_ids)
    outcome = BulkOutcome(asked=[], refused=[])
    for seat in seats:
        if seat.state == SeatState.PENDING:  # never launched: only taking it off the roster applies
            if action == "delete":
                Seat.objects.filter(pk=seat.pk).update(state=SeatState.REMOVED)
                outcome.asked.append(seat.username)
            continue
        try:
            _seat_act(user=user, course=course, seat=seat, action=action)
            outcome.asked.append(seat.username)
        except (ActionNotAllowed, InsufficientBalance, ClassCannotLaunch) as exc:
            outcome.refused.append(f"{seat.username}: {exc}")
    return outcome


# --- Instructors and TAs, and extending a class ---------------------------------------------------

def instructor_add(*, user, course: Course, email: str):
    """Add an instructor or TA by the address of their portal account: they see the class and act
    on every seat (through the class owner's identity; they need no role in the project)."""
    from allauth.account.models import EmailAddress

    found = EmailAddress.objects.filter(email__iexact=email.strip(), verified=True).select_related("user").first()
    if found is None:
        raise ValidationError(f"No one has a confirmed portal account with {email.strip()}; ask them to sign up "
                              "first, then add them.")
    if found.user == course.owner or course.instructors.filter(pk=found.user.pk).exists():
        raise ValidationError(f"{found.email} already teaches this class.")
    course.instructors.add(found.user)
    return found.user


def instructor_remove(*, user, course: Course, instructor_id: int) -> None:
    course.instructors.remove(instructor_id)


def course_extend(*, user, course: Course, ends_on) -> Course:
    """Move the last day later (or earlier, not before today). An ended class runs again: its seats
    come back with the class hours (or at once, without a schedule) and reminders start over."""
    today = timezone.localdate()
    if ends_on < max(today, course.starts_on):
        raise ValidationError("The last day cannot be in the past or before the first day.")
    if course.state == CourseState.DELETED:
        raise ValidationError("The class's seats are deleted; make a new class.")
    Course.objects.filter(pk=course.pk).update(
        ends_on=ends_on, reminders_sent=[], schedule_phase="",
        state=CourseState.RUNNING if course.state == CourseState.ENDED else course.state)
    course.refresh_from_db()
    return course


def seats_bind(*, user) -> int:
    """Bind the roster seats of the person's verified addresses to their account (on sign-in and on
    confirming an address); their SSH keys reach seats launched from then on."""
    from allauth.account.models import EmailAddress

    verified = [e.lower() for e in EmailAddress.objects.filter(user=user, verified=True)
                .values_list("email", flat=True)]
    return Seat.objects.filter(user__isnull=True, email__in=verified).update(user=user) if verified else 0


# --- Class hours: seats run during sessions and are shelved outside them ----------------------------

def _zone_today(course: Course, now):
    from zoneinfo import ZoneInfo

    return now.astimezone(ZoneInfo(course.timezone)).date()


def course_phase(*, course: Course, now) -> str:
    """Should the seats run now ("on") or be shelved ("off")? Outside the class's days: off; on its
    days without a schedule: on."""
    from . import schedule

    if not (course.starts_on <= _zone_today(course, now) <= course.ends_on):
        return "off"
    if not course.schedule:
        return "on"
    return schedule.phase_at(rows=course.schedule, tz=course.timezone, first_day=course.starts_on,
                             last_day=course.ends_on, now=now)


def courses_schedule(*, now) -> dict[str, int]:
    """Beat (every few minutes): where a running class's phase changed since the last run, unshelve
    (or start) its seats for a session, or shelve them after it, as the class's owner. A seat busy
    with an action of its own, or still launching, keeps the phase unapplied: the next run goes on
    with it. A student who starts their seat between sessions keeps it until the next session ends."""
    from allocations.charging import InsufficientBalance
    from instances.services import ActionNotAllowed, instance_act

    asked = {"shelve": 0, "unshelve": 0, "start": 0}
    for course in Course.objects.filter(state=CourseState.RUNNING).select_related("owner", "allocation"):
        phase = course_phase(course=course, now=now)
        if phase == course.schedule_phase:
            continue
        left = 0
        for seat in course.seats.exclude(state__in=[SeatState.REMOVED, SeatState.PENDING, SeatState.FAILED]):
            instance = _seat_instance(seat)
            if instance is None:
                left += seat.state == SeatState.LAUNCHING
                continue
            status = instance.status
            action = ("unshelve" if status in ("SHELVED", "SHELVED_OFFLOADED") else "start" if status == "SHUTOFF"
                      else None) if phase == "on" else ("shelve" if status in ("ACTIVE", "SHUTOFF") else None)
            if action is None:
                left += bool(instance.task_state) or status == "BUILD"
                continue
            try:
                instance_act(user=course.owner, instance=instance, action=action)
                asked[action] += 1
            except ActionNotAllowed:
                left += 1
            except InsufficientBalance:
                pass  # the allocation cannot carry it: the seat stays shelved, the page says why
        if not left:
            Course.objects.filter(pk=course.pk).update(schedule_phase=phase)
    return asked


# --- The end of a class: seats shelved after the last day, deleted `delete_after_days` later ------

def _reminders(course: Course, today) -> None:
    """Mail students and instructors 3 days and 1 day before the seats are shelved (the day after
    the last day) and before they are deleted; each reminder once (extending the class resets them)."""
    import datetime

    from . import notifications

    if course.state == CourseState.RUNNING:
        what, on = "shelve", course.ends_on + datetime.timedelta(days=1)
    else:
        what, on = "delete", course.ends_on + datetime.timedelta(days=course.delete_after_days + 1)
    days = (on - today).days
    due = [d for d in (3, 1) if 0 < days <= d and f"{what}-{d}" not in course.reminders_sent]
    if not due:
        return
    notifications.reminder_send(course, what=what, on=on, days=days)
    sent = sorted({*course.reminders_sent, *(f"{what}-{d}" for d in (3, 1) if days <= d)})
    Course.objects.filter(pk=course.pk).update(reminders_sent=sent)
    course.reminders_sent = sent


def courses_end(*, today) -> dict[str, int]:
    """Beat: mail the reminders that are due; shelve the seats of classes whose last day has passed
    (0 SU while shelved; the class becomes "ended"), and delete them `delete_after_days` after (the
    class becomes "deleted" once none is left). Actions go through the instances' action path as
    the class's owner; a seat with an action still running is tried again at the next run.
    Returns what it asked for."""
    import datetime

    from instances.services import ActionNotAllowed, instance_act

    asked = {"shelve": 0, "delete": 0}
    for course in Course.objects.filter(state__in=[CourseState.RUNNING, CourseState.ENDED]):
        _reminders(course, today)
        if course.ends_on >= today:
            continue
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
            Course.objects.filter(pk=course.pk).update(state=CourseState.ENDED, schedule_phase="off")
    return asked


def seats_seen(*, seats: list[Seat]) -> None:
    """The student opened their machines' page: the instructor's table shows when."""
    if seats:
        Seat.objects.filter(pk__in=[s.pk for s in seats]).update(last_seen_at=timezone.now())
