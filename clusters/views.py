"""Cluster pages: list, "New cluster" with its cost preview, the live cluster page, max workers,
delete. Thin: parse, call a service or selector, render."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from allocations.charging import InsufficientBalance
from allocations.scopes import NoCloudAccess
from allocations.selectors import allocation_for_request, allocation_list_for_user, allocation_list_usable_for_user
from instances import selectors as instance_selectors
from instances.services import ActionNotAllowed
from portal.cloud.errors import CloudError
from portal.htmx import partial_template

from . import selectors, services
from .forms import ClusterForm


@require_GET
def cluster_list(request):
    allocation = allocation_for_request(request)
    return render(request, "clusters/list.html", {
        "clusters": selectors.cluster_list_for_user(user=request.user, allocation=allocation),
        "allocation": allocation, "allocations": allocation_list_for_user(user=request.user)})


def _form(request, allocation) -> ClusterForm:
    options = instance_selectors.launch_options(user=request.user, allocation=allocation)
    return ClusterForm(request.POST or None, allocation=allocation, images=options["images"],
                       flavors=options["flavors"], keys=instance_selectors.ssh_key_list_for_user(user=request.user),
                       initial={"project": allocation.pk})


def cluster_create(request):
    usable = list(allocation_list_usable_for_user(user=request.user))
    allocation = allocation_for_request(request, among=usable, first=True)
    context = {"usable": usable, "allocation": allocation}
    if allocation is None:
        return render(request, "clusters/create.html", context)
    try:
        form = _form(request, allocation)
    except (CloudError, NoCloudAccess) as exc:
        return render(request, "clusters/create.html", {**context, "cloud_error": str(exc)})
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            cluster = services.cluster_create(
                user=request.user, allocation=allocation, name=data["name"], image_id=data["image"],
                image_name=form.chosen_image.name, family=services.image_family(image_name=form.chosen_image.name),
                head_flavor=form.flavor("head_flavor"), worker_flavor=form.flavor("worker_flavor"),
                max_workers=data["max_workers"], idle_minutes=data["idle_minutes"], ssh_key=form.chosen_key)
        except ValidationError as exc:
            if hasattr(exc, "error_dict"):
                for field, errors in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, errors)
            else:
                form.add_error(None, exc.messages[0])
        except (InsufficientBalance, NoCloudAccess) as exc:
            form.add_error(None, str(exc))
        else:
            return redirect("clusters:detail", pk=cluster.pk)
    preview = _preview(form, form.data or None)
    return render(request, "clusters/create.html", {**context, "form": form, "preview": preview})


def _preview(form: ClusterForm, data):
    """The cost of the form's choices (its defaults before anything is chosen)."""
    pick = (data or {}).get
    head_id = pick("head_flavor") if data else form.fields["head_flavor"].initial
    worker_id = pick("worker_flavor") if data else form.fields["worker_flavor"].initial
    head = next((f for f in form.flavors if f.id == head_id), None)
    worker = next((f for f in form.flavors if f.id == worker_id), None)
    try:
        count = max(1, min(int((pick("max_workers") if data else None) or form.fields["max_workers"].initial), 32))
    except ValueError:
        count = 1
    if head is None or worker is None:
        return None
    return selectors.cost_preview(head_flavor=head, worker_flavor=worker, max_workers=count)


@require_GET
def cluster_cost(request):
    """The live cost preview of the New cluster form (htmx)."""
    usable = list(allocation_list_usable_for_user(user=request.user))
    allocation = allocation_for_request(request, among=usable, first=True)
    preview = None
    if allocation is not None:
        try:
            form = ClusterForm(None, allocation=allocation, images=[], keys=[],
                               flavors=instance_selectors.flavor_list_for(user=request.user, allocation=allocation))
            preview = _preview(form, request.GET)
        except (CloudError, NoCloudAccess):
            preview = None
    return render(request, "clusters/create.html#cost", {"preview": preview})


@require_GET
def cluster_detail(request, pk: int):
    cluster = selectors.cluster_get_for_user(user=request.user, pk=pk)
    return render(request, partial_template(request, "clusters/detail.html", "live"),
                  selectors.cluster_page(cluster=cluster))


@require_POST
def cluster_max_workers(request, pk: int):
    cluster = selectors.cluster_get_for_user(user=request.user, pk=pk)
    try:
        services.cluster_set_max_workers(user=request.user, cluster=cluster,
                                         max_workers=int(request.POST.get("max_workers", "")))
    except ValueError:
        messages.error(request, "Give a number of workers.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except NoCloudAccess as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"{cluster.name} may now have up to {request.POST['max_workers']} workers.")
    return redirect("clusters:detail", pk=pk)


@require_POST
def cluster_delete(request, pk: int):
    cluster = selectors.cluster_get_for_user(user=request.user, pk=pk)
    try:
        services.cluster_delete(user=request.user, cluster=cluster)
    except (ActionNotAllowed, NoCloudAccess) as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Deleting {cluster.name}: every worker, then the head node.")
    return redirect("clusters:detail", pk=pk)
