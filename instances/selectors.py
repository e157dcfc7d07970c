"""Reads for the instance and volume pages: from the mirror, gated by allocation membership."""
from __future__ import annotations

from django.db.models import Count, Func, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import Http404

from allocations.selectors import allocation_list_for_user

from .models import SETTLED_STATUSES, CloudAction, Instance, LaunchRequest, SSHKey, Volume

SORTS = {"name": "name", "-name": "-name", "status": "status", "-status": "-status", "age": "-cloud_created_at",
         "-age": "cloud_created_at", "flavor": "flavor_name", "-flavor": "-flavor_name"}


def project_ids_for_user(*, user) -> list[str]:
    return list(allocation_list_for_user(user=user).exclude(openstack_project_id="")
                .values_list("openstack_project_id", flat=True))


# What a row of the instance list shows (templates/instances/list.html, its tbody): the list page
# and its poll read these columns only, not the whole mirrored server, creator and allocation.
ROW_FIELDS = ("allocation_id", "server_id", "name", "status", "task_state", "flavor_name", "vgpus", "gpu_fraction",
              "gpu_memory_gb", "image_name", "addresses", "is_locked", "cloud_created_at", "created_by_id",
              "created_by__email", "created_by__username", "allocation__title", "region")


def _with_stack(qs: QuerySet[Instance]) -> QuerySet[Instance]:
    """Each server's stack, when a Heat stack made it (`stack_name`, `stack_pk`, for its badge): read
    in the same query as the servers, so a page of the list costs no query more."""
    from django.apps import apps
    from django.db.models import OuterRef, Subquery

    if not apps.is_installed("stacks"):
        return qs
    made = (apps.get_model("stacks", "StackResource").objects
            .filter(physical_resource_id=OuterRef("server_id"), type="OS::Nova::Server", stack__deleted_at=None)
            .order_by("-pk"))
    return qs.annotate(stack_name=Subquery(made.values("stack__name")[:1]),
                       stack_pk=Subquery(made.values("stack_id")[:1]))


def instance_list_for_user(*, user, allocation=None, mine: bool = False, search: str = "",
                           sort: str = "name", rows_only: bool = False, region: str | None = None
                           ) -> QuerySet[Instance]:
    """Live instances in the user's projects (or one allocation's; one region's, by key: "" the
    primary), made in the portal or not; `rows_only`: with only what the list's rows show (ROW_FIELDS)."""
    qs = Instance.objects.filter(deleted_at__isnull=True, allocation__memberships__user=user)
    if rows_only:
        qs = qs.only(*ROW_FIELDS)
    if allocation is not None:
        qs = qs.filter(allocation=allocation)
    if region is not None:
        qs = qs.filter(region=region)
    if mine:
        qs = qs.filter(created_by=user)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(server_id__startswith=search))
    return _with_stack(qs.select_related("created_by", "allocation")).order_by(SORTS.get(sort, "name"), "server_id")


def instance_rows_for_user(*, user, ids, allocation=None) -> list[Instance]:
    """The live instances among `ids` (primary keys) the user may see, in the order given: the rows
    a page of the list shows, read again for its poll (one query, whatever the page's size)."""
    ids = list(ids)
    found = {i.pk: i for i in instance_list_for_user(user=user, allocation=allocation, rows_only=True)
             .filter(pk__in=ids)}
    return [found[pk] for pk in ids if pk in found]


def instance_get_for_user(*, user, pk: int) -> Instance:
    """The instance, or 404 if the user is not a member of its allocation."""
    instance = _with_stack(Instance.objects.filter(pk=pk, allocation__memberships__user=user)
                           .select_related("allocation", "created_by", "launch_request")).first()
    if instance is None:
        raise Http404("No such instance.")
    return instance


def instances_in_flux(instances) -> bool:
    return any(not i.is_settled for i in instances)


def allocations_launching(*, user, allocation=None) -> set[int]:
    """The allocations (among the person's, or this one) with a launch still in progress: their
    new servers are not all in the mirror yet, so a list showing them polls and asks for syncs."""
    qs = LaunchRequest.objects.filter(allocation__memberships__user=user, state__in=["queued", "running"])
    if allocation is not None:
        qs = qs.filter(allocation=allocation)
    return set(qs.order_by().values_list("allocation_id", flat=True).distinct())


def regions_for_pages() -> dict:
    """The regions the portal knows and which do not answer, for the lists' region column, filter and
    banner: read from the database at most every few seconds (a Cloud row per region)."""
    from allocations.regions import region_list

    return _cached("instances:regions", 5, lambda: {"regions": (listed := region_list()),
                                                   "down": {r.key: r for r in listed if r.failing_since}})


def volume_list_for_user(*, user, allocation=None, region: str | None = None) -> QuerySet[Volume]:
    """Live volumes in the user's projects (or one allocation's; one region's by key, "" the primary)."""
    qs = Volume.objects.filter(deleted_at__isnull=True, allocation__memberships__user=user)
    if allocation is not None:
        qs = qs.filter(allocation=allocation)
    if region is not None:
        qs = qs.filter(region=region)
    return qs.select_related("allocation").order_by("name", "volume_id")


def volume_get_for_user(*, user, pk: int) -> Volume:
    volume = Volume.objects.filter(pk=pk, allocation__memberships__user=user).select_related("allocation").first()
    if volume is None:
        raise Http404("No such volume.")
    return volume


def volumes_for_instance(*, instance: Instance) -> list[Volume]:
    return [v for v in Volume.objects.filter(project_id=instance.project_id, deleted_at__isnull=True)
            if instance.server_id in v.attached_server_ids]


def launch_get_for_user(*, user, pk: int) -> LaunchRequest:
    row = LaunchRequest.objects.filter(pk=pk, allocation__memberships__user=user).select_related(
        "allocation", "requested_by").first()
    if row is None:
        raise Http404("No such launch.")
    return row


def action_list_for_target(*, target_id: str, limit: int = 50) -> list[CloudAction]:
    return list(CloudAction.objects.filter(target_id=target_id).select_related("requested_by")[:limit])


def action_get_for_user(*, user, pk: int) -> CloudAction:
    row = CloudAction.objects.filter(pk=pk, allocation__memberships__user=user).first()
    if row is None:
        raise Http404("No such action.")
    return row


def actions_recent_for_user(*, user, limit: int = 10) -> list[CloudAction]:
    return list(CloudAction.objects.filter(allocation__memberships__user=user).select_related("requested_by")
                .order_by("-created_at")[:limit])


def launches_building_for_user(*, user) -> list[LaunchRequest]:
    return list(LaunchRequest.objects.filter(allocation__memberships__user=user, state__in=["queued", "running"])
                .select_related("allocation").order_by("-created_at")[:20])


def _count_of(queryset: QuerySet, aggregate=None) -> Coalesce:
    """A subquery counting `queryset`'s rows of each allocation, or summing `aggregate` (0 when none)."""
    counted = queryset.filter(allocation=OuterRef("pk")).order_by().values("allocation").annotate(
        n=aggregate or Count("pk"))
    return Coalesce(Subquery(counted.values("n"), output_field=IntegerField()), 0)


class _FloatingIPs(Func):
    """How many of a mirrored server's addresses are public IPs, counted in PostgreSQL."""
    template = """jsonb_array_length(jsonb_path_query_array(%(expressions)s, '$[*] ? (@.kind == "floating")'))"""
    output_field = IntegerField()


def project_counts_for_user(*, user) -> list[dict]:
    """Per allocation: instances, volumes, public IPs (from the mirror) and how many are building;
    one query, each count a subquery (joining instances and volumes would multiply the rows)."""
    live = Instance.objects.filter(deleted_at__isnull=True)
    allocations = allocation_list_for_user(user=user).exclude(openstack_project_id="").annotate(
        n_instances=_count_of(live),
        n_building=_count_of(live.exclude(status__in=SETTLED_STATUSES)),
        n_volumes=_count_of(Volume.objects.filter(deleted_at__isnull=True)),
        n_floating=_count_of(live, Sum(_FloatingIPs("addresses"))),
    )
    return [{"allocation": a, "instances": a.n_instances, "building": a.n_building, "volumes": a.n_volumes,
             "floating_ips": a.n_floating} for a in allocations]


def ssh_key_list_for_user(*, user) -> QuerySet[SSHKey]:
    return SSHKey.objects.filter(user=user)


def ssh_key_get_for_user(*, user, pk: int) -> SSHKey:
    key = SSHKey.objects.filter(user=user, pk=pk).first()
    if key is None:
        raise Http404("No such key.")
    return key


# --- What the launch form offers (from the cloud, cached briefly) -------------------------------
from dataclasses import dataclass  # noqa: E402

from django.core.cache import cache  # noqa: E402

from allocations.scopes import NoCloudAccess, member_scope  # noqa: E402
from portal.cloud import compute, image, network  # noqa: E402


@dataclass(frozen=True)
class LaunchImage:
    id: str
    name: str
    group: str  # featured, project, shared
    min_disk_gb: int


def _cached(key: str, seconds: int, load):
    value = cache.get(key)
    if value is None:
        value = load()
        cache.set(key, value, seconds)
    return value


def _scope_key(scope) -> str:
    return f"{scope.identity.key}:{scope.project_id}:{scope.region}"


def flavor_list_for(*, user, allocation, region: str = "") -> list[compute.Flavor]:
    """The flavors the person's project may boot in the region (Nova decides: public ones plus
    private ones opened to the project for its allocation kind), cached briefly."""
    scope = member_scope(user=user, allocation=allocation, region=region)
    return _cached(f"instances:flavors:{_scope_key(scope)}", 300, lambda: compute.flavor_list(scope=scope))


def launch_options(*, user, allocation, region: str = "") -> dict:
    """Images, flavors, networks and security groups the person can launch with in the project,
    in the region ("" the primary)."""
    scope = member_scope(user=user, allocation=allocation, creating=True, region=region)
    project_id = allocation.openstack_project_id

    def load():
        images = [LaunchImage(id=i.id, name=i.name, group=i.group_for(project_id), min_disk_gb=i.min_disk_gb)
                  for i in image.image_list(scope=scope)]
        networks = [n for n in network.network_list(scope=scope) if not n.is_external]
        return {"images": images, "networks": networks, "security_groups": network.security_group_list(scope=scope)}

    options = _cached(f"instances:launch-options:{_scope_key(scope)}", 30, load)
    return {**options, "flavors": flavor_list_for(user=user, allocation=allocation, region=region)}


def instance_console_url(*, user, instance) -> str:
    scope = member_scope(user=user, allocation=instance.allocation, region=instance.region)
    return compute.server_console_url(scope=scope, server_id=instance.server_id)


def instance_console_log(*, user, instance) -> str:
    scope = member_scope(user=user, allocation=instance.allocation, region=instance.region)
    return compute.server_console_log(scope=scope, server_id=instance.server_id)


def security_group_list(*, user, allocation, region: str = ""):
    return network.security_group_list(scope=member_scope(user=user, allocation=allocation, region=region))


def floating_ip_list(*, user, allocation, region: str = ""):
    return network.floating_ip_list(scope=member_scope(user=user, allocation=allocation, region=region))


def volume_create_options(*, user, allocation, region: str = "") -> dict:
    from portal.cloud import block_storage

    scope = member_scope(user=user, allocation=allocation, creating=True, region=region)
    return {"snapshots": block_storage.snapshot_list(scope=scope), "images": image.image_list(scope=scope)}


def project_quotas(*, user, allocation) -> dict:
    """Instance, volume and floating IP quotas of the project (cached; empty if unavailable)."""
    from portal.cloud import block_storage
    from portal.cloud.errors import CloudError

    key = f"instances:quotas:{allocation.openstack_project_id}"
    quotas = cache.get(key)
    if quotas is None:
        try:
            scope = member_scope(user=user, allocation=allocation)
            quotas = {"instances": compute.quota_get(scope=scope).instances,
                      "volumes": block_storage.volume_quota_get(scope=scope),
                      "floating_ips": network.network_quota_get(scope=scope).floating_ips}
        except (CloudError, NoCloudAccess):
            return {}
        cache.set(key, quotas, 300)
    return quotas


QUOTA_SECONDS = 60


def _quota_generation(allocation) -> str:
    """Changes whenever one of the portal's own launches or actions in the project moves (one
    query), so the quota is read again after them and the numbers on the forms move."""
    from django.db.models import OuterRef, Subquery

    from allocations.models import Allocation

    def newest(model):
        return Subquery(model.objects.filter(allocation=OuterRef("pk")).order_by("-updated_at")
                        .values("updated_at")[:1])

    row = Allocation.objects.filter(pk=allocation.pk).values_list(
        newest(LaunchRequest), newest(CloudAction)).first() or (None, None)
    return ":".join(str(stamp.timestamp()) if stamp else "-" for stamp in row)


def project_quota_for(*, user, allocation, region: str = ""):
    """What is used and left of the project's quota in the region, read as the person through the
    gateway; cached briefly per project and region. None when it cannot be read now (the forms
    then only note it, and the cloud still checks)."""
    from portal.cloud import quotas
    from portal.cloud.errors import CloudError

    from .quota import ProjectQuota

    try:
        scope = member_scope(user=user, allocation=allocation, region=region)
    except NoCloudAccess:
        return None
    key = f"instances:quota-usage:{allocation.openstack_project_id}:{region}:{_quota_generation(allocation)}"
    rows = cache.get(key)
    if rows is None:
        try:
            rows = tuple(quotas.project_quota_usage(scope=scope))
        except CloudError:
            return None
        cache.set(key, rows, QUOTA_SECONDS)
    return ProjectQuota(rows=rows)


def dashboard_for_user(*, user) -> dict:
    projects = project_counts_for_user(user=user)
    for p in projects:
        p["quota"] = project_quotas(user=user, allocation=p["allocation"])
    return {"projects": projects, "building": launches_building_for_user(user=user),
            "recent_actions": actions_recent_for_user(user=user, limit=8)}


# --- The volumes and public IP pages (issue 14, part C) -----------------------------------------


def volume_actions_for_page(*, user, volume_ids, allocation=None, limit: int = 30) -> dict:
    """What the volumes page shows beside the mirror, in two queries: `latest` (volume id -> its
    newest action, so a failure shows on its row until something newer or a dismiss replaces it)
    and `loose` (creates still running, and failed actions whose volume is not in the mirror, e.g.
    a create Cinder refused), newest first."""
    qs = CloudAction.objects.filter(target_type="volume", allocation__memberships__user=user)
    if allocation is not None:
        qs = qs.filter(allocation=allocation)
    volume_ids = list(volume_ids)
    latest = {a.target_id: a for a in qs.filter(target_id__in=volume_ids).order_by("target_id", "-created_at")
              .distinct("target_id")} if volume_ids else {}
    loose = list(qs.filter(Q(action="create", state__in=["queued", "running"])
                           | Q(state="failed", dismissed_at__isnull=True))
                 .exclude(target_id__in=volume_ids).select_related("allocation").order_by("-created_at")[:limit])
    return {"latest": latest, "loose": loose}


def floating_ip_targets(*, ips, allocation, region: str = "") -> dict:
    """Public IP id -> the mirrored instance it points to, in one query: the instance whose
    addresses hold the public address (after a sync), else the one holding its fixed address."""
    pointed = [ip for ip in ips if ip.port_id or ip.fixed_address]
    if not pointed:
        return {}
    instances = list(Instance.objects.filter(allocation=allocation, region=region, deleted_at__isnull=True)
                     .only("pk", "name", "addresses"))
    by_floating, by_fixed = {}, {}
    for i in instances:
        for a in i.addresses:
            (by_floating if a.get("kind") == "floating" else by_fixed).setdefault(a.get("addr"), []).append(i)
    found = {}
    for ip in pointed:
        candidates = by_floating.get(ip.address) or by_fixed.get(ip.fixed_address) or []
        if len(candidates) == 1:  # two servers on overlapping private networks: do not guess
            found[ip.id] = candidates[0]
    return found


# --- The instance page, its list rows and the launch page (issue 14, part A) --------------------

# Glance's os_distro -> the user its cloud images log in as.
LOGIN_USERS = {"ubuntu": "ubuntu", "rocky": "rocky", "almalinux": "almalinux", "debian": "debian",
               "centos": "centos", "fedora": "fedora"}


def latest_actions_for_servers(*, server_ids) -> dict[str, CloudAction]:
    """Server id -> its newest action through the portal, in one query for the whole page."""
    server_ids = list(server_ids)
    if not server_ids:
        return {}
    return {a.target_id: a for a in CloudAction.objects.filter(target_type="server", target_id__in=server_ids)
            .order_by("target_id", "-created_at").distinct("target_id")}


def failed_last_actions(*, instances) -> dict[str, CloudAction]:
    """Server id -> its newest action when that failed and was not put away (one query)."""
    latest = latest_actions_for_servers(server_ids=[i.server_id for i in instances])
    return {sid: a for sid, a in latest.items() if a.state == "failed" and a.dismissed_at is None}


def instance_login_user(*, user, instance) -> str:
    """The user the instance's image logs in as ("" when unknown), from the image's os_distro read
    once through the gateway and cached a day (only the instance page asks, never a list)."""
    from portal.cloud.errors import CloudError, NotFound

    if not instance.image_id:
        return ""
    key = f"instances:image-distro:{instance.image_id}"
    distro = cache.get(key)
    if distro is None:
        try:
            distro = image.image_get(scope=member_scope(user=user, allocation=instance.allocation,
                                                        region=instance.region),
                                     image_id=instance.image_id).os_distro
        except NotFound:
            distro = ""  # the image was deleted: nothing to learn later either
        except (CloudError, NoCloudAccess):
            return ""
        cache.set(key, distro, 24 * 3600)
    return LOGIN_USERS.get(distro, "")


def volumes_attachable_to(*, user, instance) -> list[Volume]:
    """The project's volumes that can be attached to the instance now (available ones, in its region)."""
    return list(volume_list_for_user(user=user, allocation=instance.allocation).filter(status="available",
                                                                                       region=instance.region))


# --- What the launch and volume forms are built from (the page and the API share these) ----------


def launch_form_kwargs(*, user, allocation, region: str = "") -> dict:
    """LaunchForm's choices and limits for the person in the allocation and region: the project's
    images, networks, groups and flavors there (as the person), their keys, bootable volumes, and
    quota."""
    return {"options": launch_options(user=user, allocation=allocation, region=region),
            "keys": list(ssh_key_list_for_user(user=user)),
            "volumes": volume_list_for_user(user=user, allocation=allocation).filter(
                status="available", is_bootable=True, region=region),
            "quota": project_quota_for(user=user, allocation=allocation, region=region),
            "region": region}


def volume_form_kwargs(*, user, allocation, region: str = "") -> dict:
    return {**volume_create_options(user=user, allocation=allocation, region=region),
            "quota": project_quota_for(user=user, allocation=allocation, region=region), "region": region}
