"""Volume, SSH key, security group and floating IP pages."""
from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from allocations.scopes import NoCloudAccess
from allocations.selectors import allocation_list_for_user, allocation_list_usable_for_user
from portal.cloud.errors import CloudError

from . import selectors, services
from .forms import SecurityGroupForm, SSHKeyForm, VolumeAttachForm, VolumeCreateForm, VolumeExtendForm
from .services import network_admin
from .views import _partial, _selected_allocation


def _project_context(request):
    allocations = list(allocation_list_for_user(user=request.user).exclude(openstack_project_id=""))
    allocation = _selected_allocation(request) or (allocations[0] if allocations else None)
    return allocations, allocation


def volume_list(request):
    allocation = _selected_allocation(request)
    volumes = list(selectors.volume_list_for_user(user=request.user, allocation=allocation))
    instances = list(selectors.instance_list_for_user(user=request.user, allocation=allocation))
    names = {i.server_id: i for i in instances}
    for v in volumes:
        v.attached_to = [names.get(sid) for sid in v.attached_server_ids]
    return render(request, _partial(request, "instances/volumes.html", "rows"), {
        "volumes": volumes, "allocation": allocation, "in_flux": any(not v.is_settled for v in volumes),
        "allocations": allocation_list_usable_for_user(user=request.user), "instances": instances,
        "projects": allocation_list_for_user(user=request.user).exclude(openstack_project_id=""),
    })


def volume_create(request):
    """A form page (GET) whose choices come from the cloud; POST records the create and queues it."""
    usable = list(allocation_list_usable_for_user(user=request.user))
    allocation = _selected_allocation(request) or (usable[0] if usable else None)
    if allocation is None:
        messages.error(request, "You are not in an active allocation, so there is nowhere to make a volume.")
        return redirect("instances:volumes")
    try:
        options = selectors.volume_create_options(user=request.user, allocation=allocation)
    except (CloudError, NoCloudAccess) as exc:
        messages.error(request, str(exc))
        return redirect("instances:volumes")
    form = VolumeCreateForm(request.POST or None, **options)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            services.volume_create_request(user=request.user, allocation=allocation, name=d["name"],
                                           size_gb=d["size_gb"], snapshot_id=d["snapshot_id"], image_id=d["image_id"])
        except NoCloudAccess as exc:
            messages.error(request, str(exc))
            return redirect("instances:volumes")
        messages.info(request, f"Creating volume {d['name']}.")
        return redirect(f"{reverse('instances:volumes')}?project={allocation.pk}")
    return render(request, "instances/volume_create.html", {"form": form, "allocation": allocation,
                                                            "allocations": usable})


@require_POST
def volume_act(request, pk: int, action: str):
    volume = selectors.volume_get_for_user(user=request.user, pk=pk)
    params = {}
    if action == "extend":
        form = VolumeExtendForm(request.POST)
        params["size_gb"] = form.cleaned_data["size_gb"] if form.is_valid() else 0
    elif action == "attach":
        instances = selectors.instance_list_for_user(user=request.user, allocation=volume.allocation)
        form = VolumeAttachForm(request.POST, instances=instances)
        if not form.is_valid():
            messages.error(request, "Pick an instance of the same project to attach to.")
            return redirect("instances:volumes")
        params["server_id"] = form.cleaned_data["server_id"]
    elif action == "snapshot":
        params["name"] = request.POST.get("name", "")[:100]
    try:
        services.volume_act(user=request.user, volume=volume, action=action, params=params)
    except services.ActionNotAllowed as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"{services.volumes.LABELS.get(action, action)} requested for volume {volume}.")
    nxt = request.POST.get("next", "")
    return redirect(nxt if nxt.startswith("/") and not nxt.startswith("//") else "instances:volumes")


def key_list(request):
    form = SSHKeyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            services.ssh_key_create(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error("name", exc.messages[0])
        else:
            messages.success(request, f"Key {form.cleaned_data['name']} added.")
            return redirect("instances:keys")
    return render(request, "instances/keys.html", {
        "keys": selectors.ssh_key_list_for_user(user=request.user), "form": form})


@require_POST
def key_delete(request, pk: int):
    key = selectors.ssh_key_get_for_user(user=request.user, pk=pk)
    try:
        services.ssh_key_delete(key=key)
    except CloudError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Key {key.name} deleted.")
    return redirect("instances:keys")


def security_group_list(request):
    allocations, allocation = _project_context(request)
    form = SecurityGroupForm(request.POST or None)
    groups, error = [], ""
    if allocation is not None:
        if request.method == "POST" and form.is_valid():
            try:
                network_admin.security_group_create(user=request.user, allocation=allocation, **form.cleaned_data)
            except (CloudError, NoCloudAccess) as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, f"Security group {form.cleaned_data['name']} created.")
                return redirect(f"{request.path}?project={allocation.pk}")
        try:
            groups = selectors.security_group_list(user=request.user, allocation=allocation)
        except (CloudError, NoCloudAccess) as exc:
            error = str(exc)
    return render(request, "instances/security_groups.html", {
        "allocations": allocations, "allocation": allocation, "groups": groups, "form": form, "error": error})


def _delete_in_project(request, delete, *, done: str, back: str):
    """Run `delete(allocation)` in the member's chosen project; report in words; back to the list."""
    _, allocation = _project_context(request)
    if allocation is None:
        raise Http404("No such project.")
    try:
        delete(allocation)
    except (CloudError, NoCloudAccess) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    return redirect(f"{reverse(back)}?project={allocation.pk}")


@require_POST
def security_group_delete(request, group_id: str):
    return _delete_in_project(
        request, lambda allocation: network_admin.security_group_delete(user=request.user, allocation=allocation,
                                                               group_id=group_id),
        done="Security group deleted.", back="instances:security_groups")


def floating_ip_list(request):
    allocations, allocation = _project_context(request)
    ips, error = [], ""
    if allocation is not None:
        if request.method == "POST":
            try:
                network_admin.floating_ip_allocate(user=request.user, allocation=allocation)
            except (CloudError, NoCloudAccess) as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, "Public IP allocated.")
            return redirect(f"{request.path}?project={allocation.pk}")
        try:
            ips = selectors.floating_ip_list(user=request.user, allocation=allocation)
        except (CloudError, NoCloudAccess) as exc:
            error = str(exc)
    return render(request, "instances/floating_ips.html", {
        "allocations": allocations, "allocation": allocation, "ips": ips, "error": error})


@require_POST
def floating_ip_delete(request, ip_id: str):
    return _delete_in_project(
        request, lambda allocation: network_admin.floating_ip_release(user=request.user, allocation=allocation,
                                                             floating_ip_id=ip_id),
        done="Public IP released.", back="instances:floating_ips")
