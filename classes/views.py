"""Class pages: an educator's classes, "New class", a class's seats with "Launch all", one seat
launched again; a student's own machines. Thin: parse, call a service or selector, render."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from allocations.charging import InsufficientBalance
from allocations.scopes import NoCloudAccess
from allocations.selectors import allocation_for_request, allocation_list_usable_for_user
from instances.selectors import flavor_list_for
from instances.services import ActionNotAllowed
from portal.cloud.errors import CloudError
from portal.htmx import is_partial, partial_template

from . import selectors, services
from .forms import CourseForm, ExtendForm, InstructorForm, RosterAddForm


@require_GET
def course_list(request):
    return render(request, "classes/list.html", {
        "courses": selectors.course_list_for_user(user=request.user),
        "seats": selectors.seats_for_student(user=request.user)})


@require_GET
def my_machines(request):
    """A student's own seats: state, the ssh command, start/stop/reboot, time left."""
    seats = selectors.seats_for_student(user=request.user)
    if not is_partial(request):
        services.seats_seen(seats=seats)
    return render(request, partial_template(request, "classes/mine.html", "machines"), {
        "seats": seats, "polling": any(s.busy or s.shown_state == "launching" for s in seats)})


@require_POST
def seat_act(request, pk: int, action: str):
    seat = selectors.seat_get_for_student(user=request.user, pk=pk)
    try:
        services.seat_act(user=request.user, seat=seat, action=action)
    except (ActionNotAllowed, InsufficientBalance) as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"{services.STUDENT_ACTIONS[action]}: asked for {seat.server_name}. "
                               "The state below follows it.")
    return redirect("classes:mine")


@require_POST
def course_act(request, pk: int):
    """An instructor's action on every seat, or on the seats ticked."""
    course = selectors.course_get_for_instructor(user=request.user, pk=pk)
    chosen = None if request.POST.get("which") == "all" else [int(x) for x in request.POST.getlist("seat")
                                                               if x.isdigit()]
    try:
        outcome = services.seats_act(user=request.user, course=course, action=request.POST.get("action", ""),
                                     seat_ids=chosen)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        (messages.info if outcome.asked else messages.warning)(request, outcome.summary)
    return redirect("classes:detail", pk=course.pk)


@require_POST
def course_roster_add(request, pk: int):
    """More students; in a running class their seats launch at once."""
    course = selectors.course_get_for_instructor(user=request.user, pk=pk)
    form = RosterAddForm(request.POST)
    if form.is_valid():
        try:
            added = services.roster_add(user=request.user, course=course, roster=form.cleaned_data["roster"])
            if added and course.state == "running":
                services.course_launch(user=request.user, course=course, seats=added,
                                       base_url=request.build_absolute_uri("/"))
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        except (NoCloudAccess, services.ClassCannotLaunch, InsufficientBalance, CloudError) as exc:
            messages.error(request, f"The students were added, but their seats did not launch: {exc}")
        else:
            messages.success(request, f"Added {len(added)} student{'s' if len(added) != 1 else ''}.")
    else:
        messages.error(request, "Paste one student per line: email[,name].")
    return redirect("classes:detail", pk=course.pk)


@require_POST
def course_instructor_add(request, pk: int):
    course = selectors.course_get_for_instructor(user=request.user, pk=pk)
    form = InstructorForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("Write the email address of their portal account.")
        added = services.instructor_add(user=request.user, course=course, email=form.cleaned_data["email"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"{added.email} can now see this class and act on every seat.")
    return redirect("classes:detail", pk=course.pk)


@require_POST
def course_instructor_remove(request, pk: int, user_id: int):
    course = selectors.course_get_for_instructor(user=request.user, pk=pk)
    instructor = get_object_or_404(course.instructors, pk=user_id)
    services.instructor_remove(user=request.user, course=course, instructor_id=instructor.pk)
    messages.success(request, f"{instructor.email} no longer teaches this class.")
    return redirect("classes:detail", pk=course.pk)


@require_POST
def course_extend(request, pk: int):
    course = selectors.course_get_for_instructor(user=request.user, pk=pk)
    form = ExtendForm(request.POST)
    try:
        if not form.is_valid():
            raise ValidationError("Choose the new last day.")
        course = services.course_extend(user=request.user, course=course, ends_on=form.cleaned_data["ends_on"])
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"The class now ends on {course.ends_on:%b %-d, %Y}.")
    return redirect("classes:detail", pk=course.pk)


def course_create(request):
    usable = list(allocation_list_usable_for_user(user=request.user))
    allocation = allocation_for_request(request, among=usable, first=True)
    form = CourseForm(request.POST or None, request.FILES or None,
                      templates=selectors.template_list_for_user(user=request.user))
    context = {"usable": usable, "allocation": allocation, "form": form}
    if allocation is not None and request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            course = services.course_create(
                user=request.user, allocation=allocation, template=form.chosen_template, name=data["name"],
                title=data["title"], starts_on=data["starts_on"], ends_on=data["ends_on"], roster=data["roster"],
                schedule=data["schedule"], timezone_name=data["timezone"],
                delete_after_days=data["delete_after_days"])
        except ValidationError as exc:
            for message in exc.messages:
                form.add_error("roster" if message.startswith("Line ") or "roster" in message else None, message)
        except NoCloudAccess as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"{course} has {course.seats.count()} seats. Launch them when you are ready.")
            return redirect("classes:detail", pk=course.pk)
    return render(request, "classes/create.html", context)


@require_GET
def course_detail(request, pk: int):
    course = selectors.course_get_for_instructor(user=request.user, pk=pk)
    try:
        vcpus = next((f.vcpus for f in flavor_list_for(user=course.owner, allocation=course.allocation)
                      if f.name == course.template.flavor_name), None)
    except (CloudError, NoCloudAccess):
        vcpus = None
    context = selectors.course_page(course=course, flavor_vcpus=vcpus)
    context.update(roster_form=RosterAddForm(), extend_form=ExtendForm(initial={"ends_on": course.ends_on}),
                   instructor_form=InstructorForm())
    return render(request, partial_template(request, "classes/detail.html", "seats"), context)


@require_POST
def course_launch(request, pk: int):
    course = selectors.course_get_for_instructor(user=request.user, pk=pk)
    seat_pk = request.POST.get("seat")
    seats = [get_object_or_404(course.seats, pk=seat_pk)] if seat_pk else None
    try:
        launched = services.course_launch(user=request.user, course=course, seats=seats,
                                          base_url=request.build_absolute_uri("/"))
    except (NoCloudAccess, services.ClassCannotLaunch, InsufficientBalance, ValidationError, CloudError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", None) or [str(exc)]))
    else:
        messages.info(request, f"Launching {len(launched)} seat{'s' if len(launched) != 1 else ''}."
                      if launched else "Every seat is launched already.")
    return redirect("classes:detail", pk=course.pk)
