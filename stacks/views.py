"""Stack pages: list, New stack (template, then its parameters with the cost preview), the live
stack page, delete. Thin: parse, call a service or selector, render."""
from __future__ import annotations

import re

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from allocations.scopes import NoCloudAccess
from allocations.selectors import allocation_for_request, allocation_list_for_user, allocation_list_usable_for_user
from instances import selectors as instance_selectors
from portal.cloud.errors import BadRequest, CloudError
from portal.htmx import is_partial, partial_template

from . import selectors, services, tasks
from .forms import PREFIX, StackParametersForm, TemplateSourceForm
from .templating import TemplateUnreadable


@require_GET
def stack_list(request):
    allocation = allocation_for_request(request)
    stacks = list(selectors.stack_list_for_user(user=request.user, allocation=allocation))
    if is_partial(request):  # the list's poll: stacks made with the CLI, or still building, show soon
        tasks.sync_soon({s.allocation_id for s in stacks} | ({allocation.pk} if allocation else set()))
    return render(request, partial_template(request, "stacks/list.html", "rows"), {
        "stacks": stacks, "allocation": allocation, "in_flux": any(s.in_progress for s in stacks),
        "allocations": allocation_list_for_user(user=request.user).exclude(openstack_project_id="")})


def _usable(request):
    usable = list(allocation_list_usable_for_user(user=request.user))
    return usable, allocation_for_request(request, among=usable, first=True)


def _suggested_name(template_name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", (template_name or "stack").lower()).strip("-")[:40] or "stack"
    return slug if slug[0].isalpha() else f"stack-{slug}"


def stack_create(request):
    usable, allocation = _usable(request)
    context = {"usable": usable, "allocation": allocation}
    if allocation is None:
        return render(request, "stacks/create.html", context)
    if request.method == "POST" and request.POST.get("step") == "parameters":
        return _parameters_step(request, allocation, context, request.POST)
    if request.method == "GET" and request.GET.get("from"):
        return _again(request, allocation, context)
    library = selectors.template_library()
    source = TemplateSourceForm(request.POST or None, request.FILES or None,
                                initial={"library": library[0].pk if library else None})
    if request.method == "POST" and source.is_valid():
        try:
            text, name = source.template()
            services.template_read(user=request.user, allocation=allocation, text=text)
        except ValidationError as exc:
            source.add_error(None, exc)
        except TemplateUnreadable as exc:
            source.add_error(None, str(exc))
        except BadRequest as exc:
            source.add_error(None, f"Heat cannot use this template: {exc.detail or exc}")
        except (CloudError, NoCloudAccess) as exc:
            context["cloud_error"] = str(exc)
        else:
            data = {"step": "parameters", "template": text, "template_name": name,
                    "stack_name": _suggested_name(name)}
            return _parameters_step(request, allocation, context, data, bound=False)
    return render(request, "stacks/create.html", {**context, "source": source, "library": library})


def _parameters_step(request, allocation, context, data, *, bound: bool = True, heat_error=None):
    """The parameters form of the template in `data`, its cost and refusals; on a valid POST, the stack."""
    text = data.get("template", "")
    try:
        parsed, validation = services.template_read(user=request.user, allocation=allocation, text=text)
        form = StackParametersForm(data if bound else None, validation=validation,
                                   initial=None if bound else data)
        flavors = instance_selectors.flavor_list_for(user=request.user, allocation=allocation)
    except (TemplateUnreadable, BadRequest) as exc:
        messages.error(request, f"The template could not be read again: {exc}")
        return redirect(f"{request.path}?project={allocation.pk}")
    except (CloudError, NoCloudAccess) as exc:
        return render(request, "stacks/create.html", {**context, "cloud_error": str(exc)})
    quota = instance_selectors.project_quota_for(user=request.user, allocation=allocation)
    cost = services.stack_cost(flavors=flavors, data=parsed, values=form.values_for_preview())
    refusals = services.stack_refusals(allocation=allocation, cost=cost, quota=quota)
    if heat_error:
        form.is_valid()
        form.add_heat_error(*heat_error)
    elif bound and request.method == "POST" and form.is_valid():
        try:
            stack = services.stack_create(
                user=request.user, allocation=allocation, name=form.cleaned_data["stack_name"], template=text,
                template_name=form.cleaned_data.get("template_name", ""), values=form.heat_values(),
                hidden=form.hidden_names(), cost=cost, quota=quota)
        except services.StackRefused as exc:
            refusals = exc.reasons
        except ValidationError as exc:
            _errors_onto(form, exc)
        except (CloudError, NoCloudAccess) as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("stacks:detail", pk=stack.pk)
    return render(request, "stacks/parameters.html", {**context, "form": form, "cost": cost, "refusals": refusals,
                                                      "validation": validation})


def _errors_onto(form: StackParametersForm, exc: ValidationError) -> None:
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc.messages)
        return
    for key, errors in exc.message_dict.items():
        if key.startswith("param:"):
            for words in errors:
                form.add_heat_error(key.removeprefix("param:"), words)
        else:
            form.add_error(key if key in form.fields else None, errors)


def _again(request, allocation, context):
    """The parameters form again, with the values a stack was made with (hidden ones are asked
    again) and Heat's refusal on its field when that is why its create failed."""
    try:
        stack = selectors.stack_get_for_user(user=request.user, pk=int(request.GET["from"]))
    except ValueError:
        raise Http404("No such stack.") from None
    if stack.allocation_id != allocation.pk or not stack.template:
        raise Http404("No such stack.")
    data = {"step": "parameters", "template": stack.template, "template_name": stack.template_name,
            "stack_name": stack.name if stack.deleted_at or stack.stack_id == "" else f"{stack.name}-2",
            **{PREFIX + k: v for k, v in stack.parameters.items()}}
    op = stack.operations.filter(kind="create").first()
    heat_error = (op.error_field, op.error.split(": ", 1)[-1]) if op and op.error_field else None
    return _parameters_step(request, allocation, context, data, heat_error=heat_error)


@require_POST
def stack_cost(request):
    """The live cost preview (and refusals) of the parameters form (htmx): nothing is made."""
    _, allocation = _usable(request)
    if allocation is None:
        raise Http404("No such allocation.")
    try:
        parsed, validation = services.template_read(user=request.user, allocation=allocation,
                                                    text=request.POST.get("template", ""))
        form = StackParametersForm(request.POST, validation=validation)
        flavors = instance_selectors.flavor_list_for(user=request.user, allocation=allocation)
    except (TemplateUnreadable, CloudError, NoCloudAccess):
        return render(request, "stacks/parameters.html#cost", {"cost": None})
    quota = instance_selectors.project_quota_for(user=request.user, allocation=allocation)
    cost = services.stack_cost(flavors=flavors, data=parsed, values=form.values_for_preview())
    return render(request, "stacks/parameters.html#cost", {
        "cost": cost, "refusals": services.stack_refusals(allocation=allocation, cost=cost, quota=quota)})


@require_GET
def stack_detail(request, pk: int):
    stack = selectors.stack_get_for_user(user=request.user, pk=pk)
    return render(request, partial_template(request, "stacks/detail.html", "live"),
                  selectors.stack_page(user=request.user, stack=stack))


@require_POST
def stack_delete(request, pk: int):
    stack = selectors.stack_get_for_user(user=request.user, pk=pk)
    try:
        services.stack_delete(user=request.user, stack=stack)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except NoCloudAccess as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Deleting {stack.name} and everything Heat made for it.")
    return redirect("stacks:detail", pk=pk)
