"""Instance pages: list, launch, progress, detail, actions. Thin: parse, call, render."""
from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import reswap, retarget

from allocations.charging import InsufficientBalance, family_rates_all, su_per_hour
from allocations.regions import allocation_regions, region_for_request, region_key, region_name
from allocations.scopes import NoCloudAccess
from allocations.selectors import allocation_for_request, allocation_list_for_user, allocation_list_usable_for_user
from portal.cloud.errors import CloudError
from portal.htmx import is_partial, partial_template
from portal.words import age_words

from . import selectors, services, tasks
from .forms import ImageCreateForm, InstanceVolumeAttachForm, LaunchForm, ResizeForm
from .services import actions as server_actions, launch as launch_steps


@require_GET
def instance_list(request):
    allocation = allocation_for_request(request)
    return render(request, partial_template(request, "instances/list.html", "rows"),
                  _list_context(request, request.GET, allocation, list_url=request.get_full_path()))


def _region_filter(params) -> str | None:
    """The region filter asked for (by key, "" the primary), None for all regions."""
    return region_key(params["region"]) if params.get("region") else None


def _list_page(request, params, allocation):
    """The page of the list these query parameters (filters, sort, page) ask for."""
    found = selectors.instance_list_for_user(
        user=request.user, allocation=allocation, mine=params.get("mine") == "1",
        search=params.get("q", "").strip()[:100], sort=params.get("sort", "name"), rows_only=True,
        region=_region_filter(params))
    return Paginator(found, settings.PORTAL_INSTANCE_PAGE_SIZE).get_page(params.get("page"))


def _list_context(request, params, allocation, *, list_url: str) -> dict:
    page = _list_page(request, params, allocation)
    kept = params.copy()  # the project, filters and sort, kept by the page links
    kept.pop("page", None)
    return {
        **_rows_context(request, list(page.object_list), allocation, list_url=list_url),
        "page": page, "page_numbers": list(page.paginator.get_elided_page_range(page.number, on_ends=1)),
        "page_href": f"{reverse('instances:list')}?{kept.urlencode()}{'&' if kept else ''}page=",
        "mine": params.get("mine") == "1", "search": params.get("q", "").strip()[:100],
        "sort": params.get("sort", "name"), "region_filter": params.get("region", ""),
        "allocations": allocation_list_for_user(user=request.user).exclude(openstack_project_id=""),
    }


@require_GET
def instance_rows(request):
    """The list's live status poll: only the rows of the page in view (`ids`, the instances' pks),
    read again from the mirror, so a poll costs the same on page 1 of 50 as of 5,000. When the page
    in view would now hold other instances (one made with the CLI, a launch's new servers, one
    deleted), the whole list is sent instead, in place of the old one."""
    allocation = allocation_for_request(request)
    try:
        ids = [int(pk) for pk in request.GET.get("ids", "").split(",") if pk][:settings.PORTAL_INSTANCE_PAGE_SIZE]
    except ValueError:
        raise Http404("No such instances.") from None
    current = request.htmx.current_url_abs_path if request.htmx else None  # the list page, for Dismiss's `next`
    on_list = bool(current) and urlsplit(current).path == reverse("instances:list")
    list_url = current if on_list else reverse("instances:list")
    if on_list:
        params = QueryDict(urlsplit(current).query)
        if [i.pk for i in _list_page(request, params, allocation).object_list] != ids:
            response = render(request, "instances/list.html#rows",
                              _list_context(request, params, allocation, list_url=list_url))
            return reswap(retarget(response, "#instance-rows"), "outerHTML")
    instances = selectors.instance_rows_for_user(user=request.user, ids=ids, allocation=allocation)
    return render(request, "instances/list.html#tbody", _rows_context(request, instances, allocation,
                                                                       list_url=list_url))


def _rows_context(request, instances, allocation, *, list_url: str) -> dict:
    """What the list's rows show besides the mirror (each one's failed last action), whether any
    is changing or a launch in view is still making its servers (then they poll, and the mirror
    syncs soon), and the poll's address: these rows."""
    failed = selectors.failed_last_actions(instances=instances)
    regions = selectors.regions_for_pages()
    detail_prefix, now = reverse("instances:detail", args=[0])[:-2], timezone.now()  # one reverse a page
    for i in instances:
        i.detail_url = f"{detail_prefix}{i.pk}/"
        i.age = age_words(i.cloud_created_at, now)
        i.failed_action = failed.get(i.server_id)
        i.failed_action_label = server_actions.action_label(i.failed_action) if i.failed_action else ""
        i.region_down = regions["down"].get(i.region)
        i.region_name = region_name(i.region)
    changing = {i.allocation_id for i in instances if not i.is_settled}
    changing |= selectors.allocations_launching(user=request.user, allocation=allocation)
    if changing and is_partial(request):  # a poll: the rows are changing, so the mirror syncs soon
        tasks.sync_soon(changing)
    poll = {"project": allocation.pk} if allocation else {}
    poll["ids"] = ",".join(str(i.pk) for i in instances)
    return {"instances": instances, "in_flux": bool(changing), "allocation": allocation, "list_url": list_url,
            "poll_query": urlencode(poll, safe=","), "regions": regions["regions"],
            "show_regions": len(regions["regions"]) > 1, "regions_down": list(regions["down"].values())}


def _launch_allocation(request):
    usable = list(allocation_list_usable_for_user(user=request.user))
    return usable, allocation_for_request(request, among=usable, first=True)


# The quota panel of the launch form, in this order.
QUOTA_PANEL_KEYS = ("instances", "cores", "ram_gb", "gpus", "volume_gb", "volumes", "floating_ips")


def instance_launch(request):
    usable, allocation = _launch_allocation(request)
    if allocation is None:
        return render(request, "instances/launch.html", {"usable": usable, "allocation": None})
    regions = allocation_regions(allocation=allocation)
    region = region_for_request(request, regions)
    try:
        kwargs = selectors.launch_form_kwargs(user=request.user, allocation=allocation, region=region)
    except (CloudError, NoCloudAccess) as exc:
        messages.error(request, str(exc))
        return render(request, "instances/launch.html", {"usable": usable, "allocation": allocation,
                                                         "cloud_error": str(exc), "regions": regions,
                                                         "region": region})
    options, quota = kwargs["options"], kwargs["quota"]
    form = LaunchForm(request.POST or None, **kwargs)
    if request.method == "POST" and form.is_valid():
        try:
            row = services.instance_launch_from_form(user=request.user, allocation=allocation, form=form)
        except (InsufficientBalance, ValidationError, NoCloudAccess) as exc:
            form.add_error(None, exc.messages[0] if isinstance(exc, ValidationError) else str(exc))
        else:
            return redirect("instances:launch_detail", pk=row.pk)
    return render(request, "instances/launch.html", {
        "usable": usable, "allocation": allocation, "form": form, "flavors": options["flavors"], "quota": quota,
        "regions": regions, "region": region,
        "quota_rows": quota.pick(QUOTA_PANEL_KEYS) if quota else [],
        "gpu_flavors": any(f.is_gpu for f in options["flavors"])})


@require_GET
def launch_cost(request):
    """The live cost preview: SU/hour for the chosen flavor and count, and whether they fit the quota."""
    from .quota import launch_refusals

    _, allocation = _launch_allocation(request)
    region = region_for_request(request, allocation_regions(allocation=allocation)) if allocation else ""
    try:
        flavors = (selectors.flavor_list_for(user=request.user, allocation=allocation, region=region)
                   if allocation else [])
    except (CloudError, NoCloudAccess):
        flavors = []
    flavor = next((f for f in flavors if f.id == request.GET.get("flavor")), None)
    try:
        count = max(1, min(int(request.GET.get("count") or 1), 1000))
    except ValueError:
        count = 1
    rate = su_per_hour(flavor_name=flavor.name, vcpus=flavor.vcpus) * count if flavor else None
    quota = selectors.project_quota_for(user=request.user, allocation=allocation, region=region) if flavor else None
    refusals = launch_refusals(quota=quota, flavor=flavor, count=count)
    return render(request, "instances/launch.html#cost", {"rate": rate, "flavor": flavor, "count": count,
                                                          "quota_refusals": list(refusals.values())})


@require_GET
def launch_detail(request, pk: int):
    row = selectors.launch_get_for_user(user=request.user, pk=pk)
    instances = list(row.instances.filter(deleted_at__isnull=True)) if row.is_final else []
    latest = selectors.latest_actions_for_servers(server_ids=[i.server_id for i in instances])
    for i in instances:
        i.last_action = latest.get(i.server_id)
        i.last_action_label = server_actions.action_label(i.last_action) if i.last_action else ""
    retrying = any(i.last_action and not i.last_action.is_final for i in instances)
    can_retry = (row.failed_step in launch_steps.STEP_RETRY_ACTIONS and not retrying
                 and any(not i.floating_ips for i in instances))
    recovered = bool(row.failed_step == launch_steps.STEP_FLOATING_IP and instances and not retrying
                     and all(i.floating_ips for i in instances))
    return render(request, partial_template(request, "instances/launch_detail.html", "progress"), {
        "launch": row, "instances": instances, "steps": _step_badges(row, recovered), "retrying": retrying,
        "recovered": recovered,
        "can_retry": can_retry, "failed_step_words": launch_steps.STEP_WORDS.get(row.failed_step, row.failed_step)})


def _step_badges(row, recovered: bool = False) -> list[tuple[str, str]]:
    """Each step with done, current, failed or todo, for the progress badges (all done once a
    failed step went through on a second try)."""
    names = ["queued", "creating", "building"] + ([launch_steps.STEP_FLOATING_IP] if row.assign_floating_ip else []) + [
        "active"]
    if row.state == "succeeded" or recovered:
        return [(n, "done") for n in names]
    at = row.failed_step or row.step
    if at not in names:
        return [(n, "todo") for n in names]
    here = names.index(at)
    mark = "failed" if row.state == "failed" else "current"
    return [(n, "done" if i < here else mark if i == here else "todo") for i, n in enumerate(names)]


@require_POST
def launch_retry(request, pk: int):
    """Try a launch's failed step again (e.g. assigning the public IP), as server actions."""
    row = selectors.launch_get_for_user(user=request.user, pk=pk)
    try:
        done = launch_steps.launch_step_retry(user=request.user, launch=row)
    except (services.ActionNotAllowed, InsufficientBalance, CloudError) as exc:
        messages.error(request, str(exc))
    else:
        messages.info(request, f"Trying again: {launch_steps.STEP_WORDS.get(row.failed_step, row.failed_step)} for "
                               f"{', '.join(a.target_name for a in done)}.")
    return redirect("instances:launch_detail", pk=pk)


# Actions the instance page shows in their own place rather than as plain buttons.
SEPARATE_ACTIONS = frozenset({"resize", "image_create", "delete", "resize_confirm", "resize_revert",
                              "floating_ip_assign"})
# States in which Nova attaches a volume.
ATTACHABLE_STATUSES = frozenset({"ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED", "SHELVED", "SHELVED_OFFLOADED"})


def _resize_flavors(request, instance) -> list:
    try:
        return [f for f in selectors.flavor_list_for(user=request.user, allocation=instance.allocation,
                                                     region=instance.region)
                if f.name != instance.flavor_name]
    except (CloudError, NoCloudAccess):
        return []


def _attached_volumes(instance) -> list:
    """Attached volumes with the device Nova reports and how to mount them (the volumes page's hint)."""
    volumes = selectors.volumes_for_instance(instance=instance)
    for v in volumes:
        v.device = next((a.get("device") or "" for a in v.attachments if a.get("server_id") == instance.server_id), "")
        v.mount = services.volumes.volume_mount_hint(volume=v, device=v.device) if v.device else None
    return volumes


def _connect(request, instance) -> dict:
    """How to reach the instance: the login user of its image and the ssh command."""
    user = selectors.instance_login_user(user=request.user, instance=instance)
    address = instance.floating_ips[0] if instance.floating_ips else ""
    return {"user": user, "address": address,
            "ssh": f"ssh {user or '<user>'}@{address}" if address else ""}


def _costs(instance) -> dict:
    """SU/hour now, and what stopping or shelving would cost instead (one read of the family rates)."""
    rates = family_rates_all()

    def rate(status):
        return su_per_hour(flavor_name=instance.flavor_name, vcpus=instance.vcpus, status=status,
                           family_rates=rates)
    return {"now": rate(instance.status), "active": rate("ACTIVE"), "stopped": rate("SHUTOFF"),
            "shelved": rate("SHELVED_OFFLOADED")}


def _detail_context(request, instance, *, resize_form=None, resize_preview=None, attach_form=None) -> dict:
    actions = services.actions_available(instance=instance)
    offered = {name for name, _ in actions}
    history = selectors.action_list_for_target(target_id=instance.server_id)
    for a in history:
        a.label = server_actions.action_label(a)
    launch = instance.launch_request
    context = {
        "instance": instance, "offered": offered, "history": history,
        "actions": [(name, spec) for name, spec in actions if name not in SEPARATE_ACTIONS],
        "delete_spec": services.ACTIONS["delete"] if "delete" in offered else None,
        "volumes": _attached_volumes(instance), "connect": _connect(request, instance), "costs": _costs(instance),
        "portal_ips": server_actions.portal_floating_ip_addresses(instance=instance) if "delete" in offered else [],
        "launch_failure": launch if launch and launch.failed_step and not instance.floating_ips else None,
        "failed_action": next((a for a in history[:1] if a.state == "failed" and a.dismissed_at is None), None),
        "resize_from": next((a.params.get("from_flavor_name", "") for a in history if a.action == "resize"), ""),
        "image_form": ImageCreateForm(initial={"name": f"{instance.name}-image"}),
    }
    if "resize" in offered:
        context["resize_form"] = resize_form or ResizeForm(flavors=_resize_flavors(request, instance))
        context["resize_preview"] = resize_preview
    if instance.status in ATTACHABLE_STATUSES and not instance.deleted_at:
        context["attach_form"] = attach_form or InstanceVolumeAttachForm(
            volumes=selectors.volumes_attachable_to(user=request.user, instance=instance))
    return context


@require_GET
def instance_detail(request, pk: int):
    instance = selectors.instance_get_for_user(user=request.user, pk=pk)
    context = _detail_context(request, instance)
    if is_partial(request):
        if not instance.is_settled or any(not a.is_final for a in context["history"][:1]):
            tasks.sync_soon([instance.allocation_id])
        return render(request, "instances/detail.html#live", context)
    return render(request, "instances/detail.html", context)


def _next_or(request, default: str) -> str:
    nxt = request.POST.get("next", "")
    return nxt if url_has_allowed_host_and_scheme(nxt, allowed_hosts={request.get_host()}) and nxt.startswith("/") \
        else default


@require_POST
def instance_act(request, pk: int, action: str):
    instance = selectors.instance_get_for_user(user=request.user, pk=pk)
    params = {}
    if action == "resize":
        flavor_id = request.POST.get("flavor_id", "")
        if request.POST.get("confirmed") != "yes":  # only the confirm step's form asks for a resize
            return redirect(f"{reverse('instances:resize', args=[pk])}?{urlencode({'flavor_id': flavor_id})}")
        params["flavor_id"] = flavor_id
    elif action == "image_create":
        form = ImageCreateForm(request.POST)
        params["name"] = form.cleaned_data["name"] if form.is_valid() else f"{instance.name}-image"
    elif action == "delete":
        params["keep_addresses"] = request.POST.getlist("keep_floating_ip")
    try:
        services.instance_act(user=request.user, instance=instance, action=action, params=params)
    except (services.ActionNotAllowed, InsufficientBalance, CloudError) as exc:
        messages.error(request, str(exc))
    else:
        label = services.ACTIONS[action].label
        messages.info(request, f"{label} requested for {instance.name}.")
    if action == "delete":
        return redirect("instances:list")
    return redirect(_next_or(request, reverse("instances:detail", args=[pk])))


@require_POST
def action_dismiss(request, pk: int):
    """Put a failed action on an instance away (it leaves the list row and the page's alert)."""
    action = selectors.action_get_for_user(user=request.user, pk=pk)
    try:
        server_actions.action_dismiss(user=request.user, action=action)
    except services.ActionNotAllowed as exc:
        messages.error(request, str(exc))
    return redirect(_next_or(request, reverse("instances:list")))


@require_GET
def instance_resize(request, pk: int):
    """The resize step: the chosen flavor checked, then old -> new shown with Confirm and Cancel.
    Nothing is asked of the cloud here; only the Confirm form's POST records the resize."""
    instance = selectors.instance_get_for_user(user=request.user, pk=pk)
    if reason := services.action_refusal(instance=instance, action="resize"):
        messages.error(request, reason)
        return redirect("instances:detail", pk=pk)
    form = ResizeForm(request.GET if "flavor_id" in request.GET else None,
                      flavors=_resize_flavors(request, instance))
    preview = None
    if form.is_bound and form.is_valid():
        try:
            preview = server_actions.resize_preview(user=request.user, instance=instance,
                                              flavor_id=form.cleaned_data["flavor_id"])
        except (services.ActionNotAllowed, InsufficientBalance, CloudError) as exc:
            form.add_error("flavor_id", str(exc))
    if is_partial(request):
        return render(request, "instances/_resize_confirm.html",
                      {"instance": instance, "resize_form": form, "resize_preview": preview})
    return render(request, "instances/detail.html",
                  _detail_context(request, instance, resize_form=form, resize_preview=preview))


@require_POST
def instance_attach_volume(request, pk: int):
    """Attach one of the project's available volumes, chosen on the instance page."""
    instance = selectors.instance_get_for_user(user=request.user, pk=pk)
    volumes = selectors.volumes_attachable_to(user=request.user, instance=instance)
    form = InstanceVolumeAttachForm(request.POST, volumes=volumes)
    if instance.status not in ATTACHABLE_STATUSES:
        form.add_error(None, f"A volume cannot be attached while the instance is {instance.status.lower()}.")
    elif form.is_valid():
        volume = next(v for v in volumes if str(v.pk) == form.cleaned_data["volume"])
        try:
            services.volume_act(user=request.user, volume=volume, action="attach",
                                params={"server_id": instance.server_id})
        except services.ActionNotAllowed as exc:
            form.add_error("volume", str(exc))
        else:
            messages.info(request, f"Attaching volume {volume} to {instance.name}.")
            return redirect("instances:detail", pk=pk)
    return render(request, "instances/detail.html", _detail_context(request, instance, attach_form=form))


def _console_log(request, instance) -> dict:
    try:
        return {"log": selectors.instance_console_log(user=request.user, instance=instance), "log_error": ""}
    except (CloudError, NoCloudAccess) as exc:
        return {"log": "", "log_error": f"The console log is not available: {exc}"}


@require_GET
def instance_console(request, pk: int):
    """Our console page: the boot log (refreshable) and a link to the graphical console."""
    instance = selectors.instance_get_for_user(user=request.user, pk=pk)
    return render(request, "instances/console.html", {"instance": instance, **_console_log(request, instance)})


@require_GET
def instance_console_log(request, pk: int):
    instance = selectors.instance_get_for_user(user=request.user, pk=pk)
    return render(request, partial_template(request, "instances/console.html", "log"),
                  {"instance": instance, **_console_log(request, instance)})


@require_GET
def instance_console_vnc(request, pk: int):
    """Open the graphical console (noVNC): a fresh, short-lived URL from Nova."""
    instance = selectors.instance_get_for_user(user=request.user, pk=pk)
    try:
        url = selectors.instance_console_url(user=request.user, instance=instance)
    except (CloudError, NoCloudAccess) as exc:
        messages.error(request, f"The graphical console is not available: {exc}")
        return redirect("instances:console", pk=pk)
    if not url:
        messages.error(request, "The cloud offers no graphical console for this instance.")
        return redirect("instances:console", pk=pk)
    return redirect(url)
