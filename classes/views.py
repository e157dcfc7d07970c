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
from portal.cloud.errors import CloudError
from portal.htmx import partial_template

from . import selectors, services
from .forms import CourseForm


@require_GET
def course_list(request):
    return render(request, "classes/list.html", {
        "courses": selectors.course_list_for_user(user=request.user),
        "seats": selectors.seats_for_student(user=request.user)})


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
                title=data["title"], starts_on=data["starts_on"], ends_on=data["ends_on"], roster=data["roster"])
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
    return render(request, partial_template(request, "classes/detail.html", "seats"),
                  selectors.course_page(course=course, flavor_vcpus=vcpus))


@require_POST
def course_launch(request, pk: int):
    course = selectors.course_get_for_instructor(user=request.user, pk=pk)
    seat_pk = request.POST.get("seat")
    seats = [get_object_or_404(course.seats, pk=seat_pk)] if seat_pk else None
    try:
        launched = services.course_launch(user=request.user, course=course, seats=seats)
    except (NoCloudAccess, services.ClassCannotLaunch, InsufficientBalance, ValidationError, CloudError) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", None) or [str(exc)]))
    else:
        messages.info(request, f"Launching {len(launched)} seat{'s' if len(launched) != 1 else ''}."
                      if launched else "Every seat is launched already.")
    return redirect("classes:detail", pk=course.pk)
