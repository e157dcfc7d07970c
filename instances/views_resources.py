"""Volume, SSH key, security group and floating IP pages."""
from __future__ import annotations

from urllib.parse import quote

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from allocations.regions import allocation_regions, region_for_request, region_key, region_name
from allocations.scopes import NoCloudAccess
from allocations.selectors import allocation_for_request, allocation_list_for_user, allocation_list_usable_for_user
from portal.cloud.errors import CloudError
from portal.htmx import partial_template

from . import selectors, services
from .forms import (
    SecurityGroupForm,
    SecurityGroupRuleForm,
    SSHKeyForm,
    SSHKeyGenerateForm,
    VolumeAttachForm,
    VolumeCreateForm,
    VolumeExtendForm,
)
from .services import keys as key_services, network_admin, volumes as volume_services


def _project_context(request):
    """The member's projects (allocations with a cloud project) and the one chosen, the first by default."""
    allocations = list(allocation_list_for_user(user=request.user).exclude(openstack_project_id=""))
    return allocations, allocation_for_request(request, among=allocations, first=True)


def _region_context(request, allocation) -> dict:
    """The regions of the chosen project and the one asked for (`region`; the primary by default),
    for the network pages, whose groups and addresses live in one region's Neutron."""
    regions = allocation_regions(allocation=allocation) if allocation is not None else []
    return {"regions": regions, "region": region_for_request(request, regions)}


def _network_page(name: str, allocation, region: str, anchor: str = "") -> str:
    """A network page's address for the project and region (what a POST redirects back to)."""
    return (f"{reverse(name)}?project={allocation.pk}" + (f"&region={quote(region)}" if region else "")
            + (f"#{anchor}" if anchor else ""))


# Nova attaches a volume to a server that is running or stopped, not one building, shelved or broken.
ATTACHABLE = frozenset({"ACTIVE", "SHUTOFF"})


def volume_list(request):
    """The mirror's volumes, plus creates still running and failed actions, each with its reason."""
    allocation = allocation_for_request(request)
    region_filter = request.GET.get("region", "")
    volumes = list(selectors.volume_list_for_user(user=request.user, allocation=allocation,
                                                  region=region_key(region_filter) if region_filter else None))
    instances = list(selectors.instance_list_for_user(user=request.user, allocation=allocation))
    regions = selectors.regions_for_pages()
    by_server = {i.server_id: i for i in instances}
    actions = selectors.volume_actions_for_page(user=request.user, allocation=allocation,
                                                volume_ids=[v.volume_id for v in volumes])
    for v in volumes:
        v.attached = [{"instance": by_server.get(a["server_id"]),
                       **volume_services.volume_mount_hint(volume=v, device=a.get("device", ""))}
                      for a in v.attachments]
        # a volume attaches only to a server of its own project and region
        v.attach_targets = [i for i in instances if i.allocation_id == v.allocation_id and i.region == v.region
                            and i.status in ATTACHABLE]
        v.region_name, v.region_down = region_name(v.region), regions["down"].get(v.region)
        last = actions["latest"].get(v.volume_id)
        v.failure = last if last and last.state == "failed" and not last.dismissed_at else None
        v.pending = last if last and not last.is_final else None  # the page polls until it ends
        if v.failure or v.pending:
            last.doing = volume_services.DOING.get(last.action, last.action)
    creating = [a for a in actions["loose"] if not a.is_final]
    failed = [a for a in actions["loose"] if a.state == "failed"]
    for a in creating + failed:
        a.doing = volume_services.DOING.get(a.action, a.action)
    return render(request, partial_template(request, "instances/volumes.html", "rows"), {
        "volumes": volumes, "allocation": allocation, "creating": creating, "failed": failed,
        "show_regions": len(regions["regions"]) > 1, "regions": regions["regions"], "region_filter": region_filter,
        "in_flux": bool(creating) or any(not v.is_settled or v.pending for v in volumes),
        "allocations": allocation_list_usable_for_user(user=request.user),
        "projects": allocation_list_for_user(user=request.user).exclude(openstack_project_id=""),
    })


def volume_create(request):
    """A form page (GET) whose choices come from the cloud; POST records the create and queues it."""
    usable = list(allocation_list_usable_for_user(user=request.user))
    # Any of the member's allocations: one that cannot take a volume now is told why below, not a 404.
    allocation = allocation_for_request(request) or (usable[0] if usable else None)
    if allocation is None:
        messages.error(request, "You are not in an active allocation, so there is nowhere to make a volume.")
        return redirect("instances:volumes")
    regions = allocation_regions(allocation=allocation)
    region = region_for_request(request, regions)
    try:
        kwargs = selectors.volume_form_kwargs(user=request.user, allocation=allocation, region=region)
    except (CloudError, NoCloudAccess) as exc:
        messages.error(request, str(exc))
        return redirect("instances:volumes")
    quota = kwargs["quota"]
    form = VolumeCreateForm(request.POST or None, **kwargs)
    if request.method == "POST" and form.is_valid():
        d = form.cleaned_data
        try:
            services.volume_create_request(user=request.user, allocation=allocation, name=d["name"],
                                           size_gb=d["size_gb"], snapshot_id=d["snapshot_id"], image_id=d["image_id"],
                                           region=d["region"])
        except NoCloudAccess as exc:
            messages.error(request, str(exc))
            return redirect("instances:volumes")
        messages.info(request, f"Creating volume {d['name']}.")
        return redirect(f"{reverse('instances:volumes')}?project={allocation.pk}")
    return render(request, "instances/volume_create.html", {
        "form": form, "allocation": allocation, "allocations": usable, "quota": quota, "regions": regions,
        "region": region,
        "quota_rows": quota.pick(("volume_gb", "volumes")) if quota else []})


def _back(request, default: str) -> str:
    """Where a row's form returns: the page it came from (a local path only), else `default`."""
    nxt = request.POST.get("next", "")
    return nxt if nxt.startswith("/") and not nxt.startswith("//") else default


@require_POST
def volume_act(request, pk: int, action: str):
    volume = selectors.volume_get_for_user(user=request.user, pk=pk)
    back = _back(request, f"{reverse('instances:volumes')}?project={volume.allocation_id}")
    params = {}
    if action == "extend":
        form = VolumeExtendForm(request.POST)
        params["size_gb"] = form.cleaned_data["size_gb"] if form.is_valid() else 0
    elif action == "attach":
        instances = selectors.instance_list_for_user(user=request.user, allocation=volume.allocation,
                                                     region=volume.region)
        form = VolumeAttachForm(request.POST, instances=instances)
        if not form.is_valid():
            messages.error(request, f"Volume {volume}: " + " ".join(form.errors.get("server_id", [])))
            return redirect(back)
        params["server_id"] = form.cleaned_data["server_id"]
    elif action == "snapshot":
        params["name"] = request.POST.get("name", "")[:100]
    try:
        services.volume_act(user=request.user, volume=volume, action=action, params=params)
    except services.ActionNotAllowed as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"{services.volumes.LABELS.get(action, action)} requested for volume {volume}.")
    return redirect(back)


@require_POST
def volume_action_dismiss(request, pk: int):
    """Put a failed volume action away (its row leaves the volumes page; the history keeps it)."""
    action = selectors.action_get_for_user(user=request.user, pk=pk)
    try:
        volume_services.volume_action_dismiss(user=request.user, action=action)
    except services.ActionNotAllowed as exc:
        messages.error(request, str(exc))
    return redirect(_back(request, f"{reverse('instances:volumes')}?project={action.allocation_id}"))


def key_list(request):
    """The person's keys; POST adds a public key they have, or (the generate form) makes a key pair
    whose private half is offered once, behind a one-time link in this response only."""
    generating = request.method == "POST" and f"{SSHKeyGenerateForm.prefix}-name" in request.POST
    form = SSHKeyForm(request.POST if request.method == "POST" and not generating else None)
    generate_form = SSHKeyGenerateForm(request.POST if generating else None)
    generated = download_url = None
    if generating and generate_form.is_valid():
        try:
            generated, private_key = key_services.ssh_key_generate(user=request.user, **generate_form.cleaned_data)
        except ValidationError as exc:
            generate_form.add_error("name", exc.messages[0])
        else:
            token = key_services.ssh_key_private_download_issue(key=generated, private_key=private_key)
            download_url = reverse("instances:key_download", args=[token])
            generate_form = SSHKeyGenerateForm()
    elif request.method == "POST" and not generating and form.is_valid():
        try:
            services.ssh_key_create(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error("name", exc.messages[0])
        else:
            messages.success(request, f"Key {form.cleaned_data['name']} added.")
            return redirect("instances:keys")
    response = render(request, "instances/keys.html", {
        "keys": selectors.ssh_key_list_for_user(user=request.user), "form": form, "generate_form": generate_form,
        "generated": generated, "download_url": download_url,
        "download_minutes": key_services.PRIVATE_KEY_TTL_SECONDS // 60})
    if generated:
        response["Cache-Control"] = "no-store"
    return response


def key_download(request, token: str):
    """A generated key's private half, once: the link stops working when used (or after minutes)."""
    download = key_services.ssh_key_private_download_redeem(token=token, user=request.user)
    if download is None:
        raise Http404("This download link was used already or has expired. Generate a new key.")
    response = HttpResponse(download.body, content_type="application/x-pem-file")
    response["Content-Disposition"] = f'attachment; filename="{download.filename}"'
    response["Cache-Control"] = "no-store"
    return response


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
    region = _region_context(request, allocation)["region"]
    groups, error = _groups(request, allocation, region)
    form = SecurityGroupForm(request.POST or None, existing_names=[g.name for g in groups])
    if request.method == "POST" and allocation is not None and not error and form.is_valid():
        try:
            network_admin.security_group_create(user=request.user, allocation=allocation, region=region,
                                                **form.cleaned_data)
        except ValidationError as exc:
            form.add_error("name", exc.messages[0])
        except (CloudError, NoCloudAccess) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Security group {form.cleaned_data['name']} created.")
            return redirect(_network_page("instances:security_groups", allocation, region))
    return _security_groups_page(request, allocations=allocations, allocation=allocation, groups=groups,
                                 error=error, form=form)


def _groups(request, allocation, region: str) -> tuple[list, str]:
    if allocation is None:
        return [], ""
    try:
        return selectors.security_group_list(user=request.user, allocation=allocation, region=region), ""
    except (CloudError, NoCloudAccess) as exc:
        return [], str(exc)


def _security_groups_page(request, *, allocations, allocation, groups, error, form, rule_form=None,
                          rule_group_id: str = "", status: int = 200):
    """Each group with its incoming rules in words and an add-a-rule form (the bound one, with its
    errors and input, for the group whose rule was refused)."""
    by_id = {g.id: g for g in groups}
    shown = []
    for g in groups:
        ingress = [r for r in g.rules if r.direction == "ingress"]
        shown.append({
            "group": g, "rules": [{"rule": r, "words": network_admin.rule_words(r, by_id)} for r in ingress],
            "egress_open": any(r.direction == "egress" and r.protocol == "any" and not r.remote_group_id
                               for r in g.rules),
            "rule_form": rule_form if g.id == rule_group_id else SecurityGroupRuleForm(auto_id=f"id_{g.id}_%s"),
            "open": g.id == rule_group_id})
    return render(request, "instances/security_groups.html", {
        "allocations": allocations, "allocation": allocation, "groups": shown, "form": form, "error": error,
        **_region_context(request, allocation)}, status=status)


def security_group_rule_add(request, group_id: str):
    """POST adds a rule; a refused one re-renders the groups page here, whose project picker then
    GETs this address, which leads back to the groups page."""
    allocations, allocation = _project_context(request)
    if allocation is None:
        raise Http404("No such project.")
    region = _region_context(request, allocation)["region"]
    if request.method != "POST":
        return redirect(_network_page("instances:security_groups", allocation, region))
    form = SecurityGroupRuleForm(request.POST, auto_id=f"id_{group_id}_%s")
    if form.is_valid():
        d = form.cleaned_data
        try:
            rule = network_admin.security_group_rule_add(
                user=request.user, allocation=allocation, group_id=group_id, protocol=d["protocol"],
                port_min=d["port_min"], port_max=d["port_max"], cidr=d["cidr"], region=region)
        except (CloudError, NoCloudAccess) as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Rule added: {network_admin.rule_words(rule)}.")
            return redirect(_network_page("instances:security_groups", allocation, region, f"group-{group_id}"))
    groups, error = _groups(request, allocation, region)
    if not any(g.id == group_id for g in groups) and not error:
        messages.error(request, "That security group is not in this project.")
        return redirect(_network_page("instances:security_groups", allocation, region))
    return _security_groups_page(request, allocations=allocations, allocation=allocation, groups=groups,
                                 error=error, form=SecurityGroupForm(), rule_form=form, rule_group_id=group_id)


@require_POST
def security_group_rule_delete(request, group_id: str, rule_id: str):
    _, allocation = _project_context(request)
    if allocation is None:
        raise Http404("No such project.")
    region = _region_context(request, allocation)["region"]
    try:
        rule = network_admin.security_group_rule_remove(user=request.user, allocation=allocation,
                                                        group_id=group_id, rule_id=rule_id, region=region)
    except (CloudError, NoCloudAccess) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, f"Rule removed: {network_admin.rule_words(rule)}.")
    return redirect(_network_page("instances:security_groups", allocation, region, f"group-{group_id}"))


def _delete_in_project(request, delete, *, done: str, back: str):
    """Run `delete(allocation, region)` in the member's chosen project and region; report in words;
    back to the list."""
    _, allocation = _project_context(request)
    if allocation is None:
        raise Http404("No such project.")
    region = _region_context(request, allocation)["region"]
    try:
        delete(allocation, region)
    except (CloudError, NoCloudAccess) as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, done)
    return redirect(_network_page(back, allocation, region))


@require_POST
def security_group_delete(request, group_id: str):
    return _delete_in_project(
        request, lambda allocation, region: network_admin.security_group_delete(
            user=request.user, allocation=allocation, group_id=group_id, region=region),
        done="Security group deleted.", back="instances:security_groups")


def floating_ip_list(request):
    allocations, allocation = _project_context(request)
    place = _region_context(request, allocation)
    ips, error = [], ""
    if allocation is not None:
        if request.method == "POST":
            try:
                network_admin.floating_ip_allocate(user=request.user, allocation=allocation, region=place["region"])
            except (CloudError, NoCloudAccess) as exc:
                messages.error(request, str(exc))
            else:
                messages.success(request, "Public IP allocated.")
            return redirect(_network_page("instances:floating_ips", allocation, place["region"]))
        try:
            ips = selectors.floating_ip_list(user=request.user, allocation=allocation, region=place["region"])
        except (CloudError, NoCloudAccess) as exc:
            error = str(exc)
    targets = selectors.floating_ip_targets(ips=ips, allocation=allocation, region=place["region"]) if ips else {}
    return render(request, "instances/floating_ips.html", {
        "allocations": allocations, "allocation": allocation, "error": error, **place,
        "ips": [{"ip": ip, "instance": targets.get(ip.id)} for ip in sorted(ips, key=lambda i: i.address)]})


@require_POST
def floating_ip_delete(request, ip_id: str):
    return _delete_in_project(
        request, lambda allocation, region: network_admin.floating_ip_release(
            user=request.user, allocation=allocation, floating_ip_id=ip_id, region=region),
        done="Public IP released.", back="instances:floating_ips")
