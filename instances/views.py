"""Instance pages: list, launch, progress, detail, actions. Thin: parse, call, render."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from allocations.charging import InsufficientBalance, su_per_hour
from allocations.scopes import NoCloudAccess
from allocations.selectors import allocation_get_for_user, allocation_list_for_user, allocation_list_usable_for_user
from portal.cloud.errors import CloudError

from . import selectors, services, tasks
from .forms import ImageCreateForm, LaunchForm, ResizeForm


def _partial(request, template: str, partial: str) -> str:
    """The named partial for an htmx request that is not a boosted navigation."""
    htmx = getattr(request, "htmx", None)
    return f"{template}#{partial}" if htmx and not htmx.boosted else template


def _selected_allocation(request, key: str = "project"):
    pk = request.GET.get(key) or request.POST.get(key)
    if pk:
        try:
            return allocation_get_for_user(user=request.user, pk=int(pk))
        except ValueError:
            raise Http404("No such project.")
    return None


@require_GET
def instance_list(request):
    allocation = _selected_allocation(request)
    mine = request.GET.get("mine") == "1"
    search = request.GET.get("q", "").strip()[:100]
    sort = request.GET.get("sort", "name")
    instances = list(selectors.instance_list_for_user(user=request.user, allocation=allocation, mine=mine,
                                                      search=search, sort=sort))
    in_flux = selectors.instances_in_flux(instances)
    if in_flux and request.htmx:
        tasks.sync_soon({i.allocation_id for i in instances if not i.is_settled})
    return render(request, _partial(request, "instances/list.html", "rows"), {
        "instances": instances, "in_flux": in_flux, "allocation": allocation, "mine": mine, "search": search,
        "sort": sort, "allocations": allocation_list_for_user(user=request.user).exclude(openstack_project_id=""),
        "query": request.GET.urlencode(),
    })


def _launch_allocation(request):
    usable = list(allocation_list_usable_for_user(user=request.user))
    pk = request.POST.get("project") or request.GET.get("project")
    chosen = next((a for a in usable if str(a.pk) == str(pk)), None) if pk else (usable[0] if usable else None)
    if pk and chosen is None:
        raise Http404("No such project.")
    return usable, chosen


def instance_launch(request):
    usable, allocation = _launch_allocation(request)
    if allocation is None:
        return render(request, "instances/launch.html", {"usable": usable, "allocation": None})
    keys = list(selectors.ssh_key_list_for_user(user=request.user))
    try:
        options = selectors.launch_options(user=request.user, allocation=allocation)
    except (CloudError, NoCloudAccess) as exc:
        messages.error(request, str(exc))
        return render(request, "instances/launch.html", {"usable": usable, "allocation": allocation,
                                                         "cloud_error": str(exc)})
    volumes = selectors.volume_list_for_user(user=request.user, allocation=allocation).filter(
        status="available", is_bootable=True)
    form = LaunchForm(request.POST or None, options=options, keys=keys, volumes=volumes)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            key = next((k for k in keys if str(k.pk) == data["ssh_key"]), None)
            if data["new_public_key"]:
                key = services.ssh_key_create(user=request.user, name=data["new_key_name"],
                                              public_key=data["new_public_key"])
            row = services.instance_launch(
                user=request.user, allocation=allocation, flavor=form.chosen_flavor, image_id=data["image"],
                image_name=form.chosen_image.name if form.chosen_image else "", name=data["name"], count=data["count"],
                boot_volume_gb=data["root_disk_gb"], boot_volume_id=data["boot_volume"], ssh_key=key, security_groups=data["security_groups"],
                network_id=data["network"], user_data=data["user_data"],
                assign_floating_ip=data["assign_floating_ip"])
        except (InsufficientBalance, ValidationError, NoCloudAccess) as exc:
            form.add_error(None, exc.messages[0] if isinstance(exc, ValidationError) else str(exc))
        else:
            return redirect("instances:launch_detail", pk=row.pk)
    return render(request, "instances/launch.html", {
        "usable": usable, "allocation": allocation, "form": form, "flavors": options["flavors"]})


@require_GET
def launch_cost(request):
    """The live cost preview: SU/hour for the chosen flavor and count."""
    _, allocation = _launch_allocation(request)
    try:
        flavors = selectors.flavor_list_for(user=request.user, allocation=allocation) if allocation else []
    except (CloudError, NoCloudAccess):
        flavors = []
    flavor = next((f for f in flavors if f.id == request.GET.get("flavor")), None)
    try:
        count = max(1, min(int(request.GET.get("count") or 1), 1000))
    except ValueError:
        count = 1
    rate = su_per_hour(flavor_name=flavor.name, vcpus=flavor.vcpus) * count if flavor else None
    return render(request, "instances/launch.html#cost", {"rate": rate, "flavor": flavor, "count": count})


@require_GET
def launch_detail(request, pk: int):
    row = selectors.launch_get_for_user(user=request.user, pk=pk)
    instances = list(row.instances.filter(deleted_at__isnull=True)) if row.state == "succeeded" else []
    return render(request, _partial(request, "instances/launch_detail.html", "progress"),
                  {"launch": row, "instances": instances,
                   "steps": ["queued", "creating", "building", "assigning public IP", "active"]
                   if row.assign_floating_ip else ["queued", "creating", "building", "active"]})


@require_GET
def instance_detail(request, pk: int):
    instance = selectors.instance_get_for_user(user=request.user, pk=pk)
    context = {
        "instance": instance, "actions": services.actions_available(instance=instance),
        "history": selectors.action_list_for_target(target_id=instance.server_id),
        "volumes": selectors.volumes_for_instance(instance=instance),
    }
    if any(name == "resize" for name, _ in context["actions"]):
        try:
            flavors = [f for f in selectors.flavor_list_for(user=request.user, allocation=instance.allocation)
                       if f.name != instance.flavor_name]
        except (CloudError, NoCloudAccess):
            flavors = []
        context["resize_form"] = ResizeForm(flavors=flavors)
    context["image_form"] = ImageCreateForm(initial={"name": f"{instance.name}-image"})
    if request.htmx and not request.htmx.boosted:
        if not instance.is_settled or any(not a.is_final for a in context["history"][:1]):
            tasks.sync_soon([instance.allocation_id])
        return render(request, "instances/detail.html#live", context)
    return render(request, "instances/detail.html", context)


@require_POST
def instance_act(request, pk: int, action: str):
    instance = selectors.instance_get_for_user(user=request.user, pk=pk)
    params = {}
    if action == "resize":
        params["flavor_id"] = request.POST.get("flavor_id", "")
    elif action == "image_create":
        form = ImageCreateForm(request.POST)
        params["name"] = form.cleaned_data["name"] if form.is_valid() else f"{instance.name}-image"
    try:
        services.instance_act(user=request.user, instance=instance, action=action, params=params)
    except (services.ActionNotAllowed, InsufficientBalance, CloudError) as exc:
        messages.error(request, str(exc))
    else:
        label = services.ACTIONS[action].label
        messages.info(request, f"{label} requested for {instance.name}.")
    if action == "delete":
        return redirect("instances:list")
    return redirect("instances:detail", pk=pk)


@require_GET
def instance_console(request, pk: int):
    instance = selectors.instance_get_for_user(user=request.user, pk=pk)
    try:
        url = selectors.instance_console_url(user=request.user, instance=instance)
    except (CloudError, NoCloudAccess) as exc:
        messages.error(request, f"The console is not available: {exc}")
        return redirect("instances:detail", pk=pk)
    return redirect(url) if url else redirect("instances:detail", pk=pk)


@require_GET
def instance_console_log(request, pk: int):
    instance = selectors.instance_get_for_user(user=request.user, pk=pk)
    try:
        text = selectors.instance_console_log(user=request.user, instance=instance)
    except (CloudError, NoCloudAccess) as exc:
        text = f"The console log is not available: {exc}"
    return HttpResponse(text or "(The console log is empty.)", content_type="text/plain; charset=utf-8")
