"""Every URL is checked for who may use it (issue 8).

The URLconf is walked with `get_resolver()`; every route it holds must be in REGISTRY below, which
says how to build the route's URL with ids that belong to ANOTHER person's allocation and who may
use it. Each route is then requested anonymously (sent to sign in, unless it is public) and by a
signed-in person who is not a member of that allocation (403/404 for members-only routes; 200
without the other's data for personal pages). After every request nothing was created, changed or
deleted: no rows, no gateway writes, nothing read in the other's project, no Celery task, no mail.
A route added to the URLconf without a REGISTRY entry fails `test_every_route_is_in_the_registry`.

The fixtures `theirs` and `gateway` (tests/portal/conftest.py) build the other's allocation and
record the cloud gateway (`portal.cloud.*`); no real cloud is needed.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings
from django.contrib.messages import constants as message_levels, get_messages
from django.core import mail
from django.shortcuts import resolve_url
from django.urls import URLResolver, get_resolver, resolve, reverse

from allocations.models import Allocation, ApplicationCredential, Invitation, KeystoneIdentity, LedgerEntry, Membership
from api.models import ApiToken, IdempotentRequest
from classes.models import Course, Seat
from clusters.models import Cluster, ClusterEvent, ClusterNode, ClusterOperation
from instances.models import CloudAction, Instance, LaunchRequest, SSHKey, Volume
from portal.cloud import identity
from portal.models import Operation
from stacks.models import Stack, StackOperation, StackResource

pytestmark = pytest.mark.django_db

# --- The URLconf, walked ----------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str  # "namespace:name"; "(unnamed) /pattern" for a route without a name
    pattern: str  # the full pattern, e.g. "/instances/<int:pk>/"
    namespace: str  # "" at the top level
    includes: tuple[str, ...]  # the URLconf modules it was included through


def _urlconf_label(resolver: URLResolver) -> str:
    conf = resolver.urlconf_name
    return conf if isinstance(conf, str) else getattr(conf, "__name__", repr(conf))


def walk(resolver=None, prefix: str = "", namespace: str = "", includes: tuple[str, ...] = ()) -> Iterator[Route]:
    for entry in (resolver or get_resolver()).url_patterns:
        pattern = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            inner = ":".join(n for n in (namespace, entry.namespace) if n)
            yield from walk(entry, pattern, inner, (*includes, _urlconf_label(entry)))
        else:
            name = (f"{namespace}:{entry.name}" if namespace else entry.name) if entry.name else f"(unnamed) /{pattern}"
            yield Route(name, f"/{pattern}", namespace, includes)


# Groups that are not ours to guard route by route; each has its own check further down.
SKIPPED: dict[str, tuple[Callable[[Route], bool], str]] = {
    "Django admin": (
        lambda r: r.namespace.split(":")[0] == "admin",
        "staff-only; Django's admin_view and allauth's secure_admin_login guard every page of it "
        "(test_admin_is_for_staff_only)"),
    "allauth": (
        lambda r: "allauth.urls" in r.includes,
        "account_*, socialaccount_*, <provider>_login/_callback: sign-in, sign-up, password reset and SSO "
        "pages, meant for anonymous visitors (test_the_sign_in_page_is_open)"),
    "static files": (
        lambda r: r.pattern.startswith("/" + settings.STATIC_URL.lstrip("/")),
        "public assets (served by WhiteNoise, not the URLconf, unless DEBUG adds them)"),
}


def guarded_routes() -> dict[str, Route]:
    return {r.name: r for r in walk() if not any(skip(r) for skip, _ in SKIPPED.values())}


# --- Who may use each route ---------------------------------------------------------------------

MEMBERS = "members of the allocation the ids belong to (or the person who owns the row)"  # outsider: 403/404
PERSONAL = "any signed-in person, about their own things"  # outsider: 200 without the other's data
PUBLIC = "anyone, signed in or not"
# By the address it comes from (PORTAL_METRICS_ALLOWED, loopback by default) or a bearer token
# (PORTAL_METRICS_TOKEN); signing in grants nothing. Given statuses, like PUBLIC.
MONITORING = "Prometheus, from an allowed address or with the metrics token"


@dataclass(frozen=True)
class Access:
    who: str
    url: Callable  # (Theirs) -> str, with the other allocation's ids
    methods: tuple[str, ...] = ("GET",)  # what the signed-in non-member tries
    data: Callable = lambda o: {}  # a POST body that would work for a member
    why: str = ""  # required for PUBLIC and PERSONAL
    statuses: dict = field(default_factory=dict)  # PUBLIC: method -> allowed status codes
    leak: str = ""  # a known leak to a non-member: the case is xfail(strict=True) until it is fixed


GET, POST, GET_POST = ("GET",), ("POST",), ("GET", "POST")


def url(name: str, *ids: Callable) -> Callable:
    return lambda o: reverse(name, args=[get(o) for get in ids])


def in_project(name: str, extra: str = "") -> Callable:
    """A page that picks its allocation from `?project=`: point it at the other's."""
    return lambda o: f"{reverse(name)}?project={o.allocation.pk}{extra}"


def _key_download_token(o) -> str:
    from instances.services.keys import ssh_key_private_download_issue
    return ssh_key_private_download_issue(key=o.key, private_key="-----BEGIN OPENSSH PRIVATE KEY----- theirs")


REGISTRY: dict[str, Access] = {
    "dashboard": Access(PUBLIC, url("dashboard"), GET_POST, statuses={"GET": (200,), "POST": (405,)},
                        why="`/` is the landing page for visitors (what the portal is, sign in / sign up) and the "
                            "person's own dashboard once signed in (their own projects, launches, actions)"),
    "healthz": Access(PUBLIC, url("healthz"), GET_POST, statuses={"GET": (200, 503), "POST": (405,)},
                      why="load balancers and monitors probe it without signing in; it names failing components only"),
    "metrics": Access(MONITORING, url("metrics"), GET_POST, statuses={"GET": (200,), "POST": (405,)},
                      why="Prometheus scrapes it without signing in. The test client comes from 127.0.0.1, the one "
                          "address allowed by default, so everyone here gets 200 (POST 405); from any other address "
                          "it is 403, signed in or not (tests/portal/test_observability.py)"),
    # Instances
    "instances:list": Access(MEMBERS, in_project("instances:list")),
    "instances:rows": Access(MEMBERS, lambda o: f"{reverse('instances:rows')}?project={o.allocation.pk}"
                                                f"&ids={o.instance.pk}"),
    "instances:launch": Access(MEMBERS, in_project("instances:launch"), GET_POST, data=lambda o: {
        "name": "grabbed", "image": "img-ubuntu", "flavor": "f-m3-small", "count": 1}),
    "instances:launch_cost": Access(MEMBERS, in_project("instances:launch_cost", "&flavor=f-m3-small&count=2")),
    "instances:launch_detail": Access(MEMBERS, url("instances:launch_detail", lambda o: o.launch.pk)),
    "instances:detail": Access(MEMBERS, url("instances:detail", lambda o: o.instance.pk)),
    "instances:act": Access(MEMBERS, url("instances:act", lambda o: o.instance.pk, lambda o: "delete"), POST),
    "instances:console": Access(MEMBERS, url("instances:console", lambda o: o.instance.pk)),
    "instances:console_log": Access(MEMBERS, url("instances:console_log", lambda o: o.instance.pk)),
    "instances:volumes": Access(MEMBERS, in_project("instances:volumes")),
    "instances:volume_create": Access(MEMBERS, in_project("instances:volume_create"), GET_POST,
                                      data=lambda o: {"name": "grabbed", "size_gb": 1}),
    "instances:volume_act": Access(MEMBERS, url("instances:volume_act", lambda o: o.volume.pk, lambda o: "delete"),
                                   POST),
    # keys and allocations:request: a POST makes the person's own key or request; it names nothing of another's.
    "instances:keys": Access(PERSONAL, url("instances:keys"), why="a person's own SSH keys"),
    "instances:key_delete": Access(MEMBERS, url("instances:key_delete", lambda o: o.key.pk), POST),
    "instances:security_groups": Access(MEMBERS, in_project("instances:security_groups"), GET_POST,
                                        data=lambda o: {"name": "grabbed", "allow_ssh": "on"}),
    "instances:security_group_delete": Access(MEMBERS, lambda o: reverse(
        "instances:security_group_delete", args=[o.group_id]) + f"?project={o.allocation.pk}", POST),
    "instances:floating_ips": Access(MEMBERS, in_project("instances:floating_ips"), GET_POST),
    "instances:floating_ip_delete": Access(MEMBERS, lambda o: reverse(
        "instances:floating_ip_delete", args=[o.ip_id]) + f"?project={o.allocation.pk}", POST),
    "instances:volume_action_dismiss": Access(MEMBERS, url("instances:volume_action_dismiss", lambda o: o.action.pk),
                                              POST),
    # a one-time link to the private key of a key pair the other person just generated
    "instances:key_download": Access(MEMBERS, lambda o: reverse("instances:key_download", args=[
        _key_download_token(o)])),
    "instances:security_group_rule_add": Access(MEMBERS, lambda o: reverse(
        "instances:security_group_rule_add", args=[o.group_id]) + f"?project={o.allocation.pk}", POST,
        data=lambda o: {"preset": "ssh", "cidr": "0.0.0.0/0"}),
    "instances:security_group_rule_delete": Access(MEMBERS, lambda o: reverse(
        "instances:security_group_rule_delete", args=[o.group_id, "rule-theirs"]) + f"?project={o.allocation.pk}",
        POST),
    # the instance page (issue 14, part A): resize confirm step, attach a volume, noVNC, a launch's step again
    "instances:resize": Access(MEMBERS, lambda o: reverse("instances:resize", args=[o.instance.pk])
                               + "?flavor_id=f-m3-quad"),
    "instances:attach_volume": Access(MEMBERS, url("instances:attach_volume", lambda o: o.instance.pk), POST,
                                      data=lambda o: {"volume": o.volume.pk}),
    "instances:console_vnc": Access(MEMBERS, url("instances:console_vnc", lambda o: o.instance.pk)),
    "instances:launch_retry": Access(MEMBERS, url("instances:launch_retry", lambda o: o.launch.pk), POST),
    "instances:action_dismiss": Access(MEMBERS, url("instances:action_dismiss", lambda o: o.action.pk), POST),
    # Heat stacks (stacks/)
    "stacks:list": Access(MEMBERS, in_project("stacks:list")),
    "stacks:create": Access(MEMBERS, in_project("stacks:create"), GET_POST, data=lambda o: {
        "project": o.allocation.pk, "step": "template", "source": "paste",
        "pasted": 'heat_template_version: "2021-04-16"\nresources: {}\n'}),
    "stacks:cost": Access(MEMBERS, in_project("stacks:cost"), POST, data=lambda o: {
        "project": o.allocation.pk, "template": 'heat_template_version: "2021-04-16"\nresources: {}\n'}),
    "stacks:detail": Access(MEMBERS, url("stacks:detail", lambda o: o.stack.pk)),
    "stacks:delete": Access(MEMBERS, url("stacks:delete", lambda o: o.stack.pk), POST),
    # Allocations and credentials
    "allocations:list": Access(PERSONAL, url("allocations:list"), why="the allocations the person belongs to"),
    "allocations:request": Access(PERSONAL, url("allocations:request"),
                                  why="anyone signed in may ask for an allocation of their own"),
    "allocations:detail": Access(MEMBERS, url("allocations:detail", lambda o: o.allocation.pk)),
    "allocations:quota": Access(MEMBERS, url("allocations:quota", lambda o: o.allocation.pk)),
    "allocations:member_add": Access(MEMBERS, url("allocations:member_add", lambda o: o.allocation.pk), POST,
                                     data=lambda o: {"email": o.outsider.email, "role": "manager"}),
    "allocations:member_remove": Access(MEMBERS, url("allocations:member_remove", lambda o: o.allocation.pk,
                                                     lambda o: o.membership.pk), POST),
    "allocations:invitation_revoke": Access(MEMBERS, url("allocations:invitation_revoke", lambda o: o.allocation.pk,
                                                         lambda o: o.invitation.pk), POST),
    # Someone holding no invitation, guessing a link: nothing is shown, nothing binds.
    "allocations:invitation_open": Access(PUBLIC, url("allocations:invitation_open", lambda o: "guessed-token-0000"),
                                          GET_POST, statuses={"GET": (404,), "POST": (404,)},
                                          why="the link in an invitation mail, opened before the invitee has an "
                                              "account; it binds only to an account that verified the invited address"),
    "allocations:credentials": Access(PERSONAL, url("allocations:credentials"), GET_POST, data=lambda o: {
        "allocation": o.allocation.pk, "name": "grabbed", "expires_in_days": 30},
        why="a person's own application credentials; the form offers only their own allocations"),
    "allocations:credential_delete": Access(MEMBERS, url("allocations:credential_delete", lambda o: o.credential.pk),
                                            POST),
    "allocations:credential_download": Access(MEMBERS, url("allocations:credential_download",
                                                           lambda o: o.download_token)),
    # Slurm clusters (clusters/)
    "clusters:list": Access(PERSONAL, url("clusters:list"), why="the clusters of the person's own allocations"),
    "clusters:create": Access(MEMBERS, in_project("clusters:create"), GET_POST, data=lambda o: {
        "project": o.allocation.pk, "name": "grabbed", "image": "img-ubuntu", "head_flavor": "f-m3-small",
        "worker_flavor": "f-m3-quad", "max_workers": 2, "idle_minutes": 10}),
    "clusters:cost": Access(MEMBERS, in_project("clusters:cost", "&head_flavor=f-m3-small&worker_flavor=f-m3-quad")),
    "clusters:detail": Access(MEMBERS, url("clusters:detail", lambda o: o.cluster.pk)),
    "clusters:max_workers": Access(MEMBERS, url("clusters:max_workers", lambda o: o.cluster.pk), POST,
                                   data=lambda o: {"max_workers": 1}),
    "clusters:delete": Access(MEMBERS, url("clusters:delete", lambda o: o.cluster.pk), POST),
    # Classes: the owner and instructors act on a class; a student sees only their own seat
    "classes:list": Access(PERSONAL, url("classes:list"), why="the classes the person teaches and their own seats"),
    "classes:create": Access(MEMBERS, in_project("classes:create"), GET_POST, data=lambda o: {
        "template": str(o.course.template_id), "name": "grabbed", "starts_on": "2026-12-01",
        "ends_on": "2026-12-31", "roster": "someone@example.org"}),
    "classes:detail": Access(MEMBERS, url("classes:detail", lambda o: o.course.pk)),
    "classes:launch": Access(MEMBERS, url("classes:launch", lambda o: o.course.pk), POST),
    "classes:mine": Access(PERSONAL, url("classes:mine"), why="the person's own class machines"),
    # A seat is its student's (and its class's instructors'): anyone else gets 404.
    "classes:seat_act": Access(MEMBERS, lambda o: reverse("classes:seat_act", args=[o.course.seats.first().pk,
                                                                                     "start"]), POST),
    "classes:act": Access(MEMBERS, url("classes:act", lambda o: o.course.pk), POST,
                          data=lambda o: {"which": "all", "action": "delete"}),
    "classes:roster_add": Access(MEMBERS, url("classes:roster_add", lambda o: o.course.pk), POST,
                                 data=lambda o: {"roster": "grabbed@example.org"}),
    "classes:extend": Access(MEMBERS, url("classes:extend", lambda o: o.course.pk), POST,
                             data=lambda o: {"ends_on": "2027-06-30"}),
    "classes:instructor_add": Access(MEMBERS, url("classes:instructor_add", lambda o: o.course.pk), POST,
                                     data=lambda o: {"email": "outsider@example.org"}),
    "classes:instructor_remove": Access(MEMBERS, url("classes:instructor_remove", lambda o: o.course.pk,
                                                     lambda o: o.allocation.pi.pk), POST),
}

# The REST API (api/): a program authenticates with a personal token; anonymous calls get 401
# problem details (no redirect to a sign-in page), and the outsider below calls with their own
# read-write token.
API = "holders of a token (or session) of a member of the allocation the ids belong to"  # outsider: 403/404
API_PERSONAL = "any token holder, about their own things"  # outsider: 200 without the other's data
PUBLIC_DOCS = "anyone: the API's schema and docs"


def _api(path: str, *ids: Callable, query: Callable = lambda o: "") -> Callable:
    return lambda o: path.format(*[get(o) for get in ids]) + query(o)


REGISTRY.update({
    "api:schema": Access(PUBLIC, url("api:schema"), GET_POST, statuses={"GET": (200,), "POST": (405, 401)},
                         why="the OpenAPI schema: gateway authors generate clients from it before signing up"),
    "api:docs": Access(PUBLIC, url("api:docs"), GET, statuses={"GET": (200,), "POST": (200, 405)},
                       why="the API's documentation page (Swagger UI on the schema)"),
    "api:tokens": Access(PERSONAL, url("api:tokens"), GET_POST, data=lambda o: {
        "name": "grabbed", "scope": "write", "allocation": o.allocation.pk, "expires_in_days": 30},
        why="a person's own API tokens; the form offers only their own allocations"),
    "api:token_revoke": Access(MEMBERS, url("api:token_revoke", lambda o: o.api_token.pk), POST),
    "api:allocation-list": Access(API_PERSONAL, _api("/api/v1/allocations/"), why="the token holder's allocations"),
    "api:allocation-detail": Access(API, _api("/api/v1/allocations/{}/", lambda o: o.allocation.pk)),
    "api:allocation-ledger": Access(API, _api("/api/v1/allocations/{}/ledger/", lambda o: o.allocation.pk)),
    "api:allocation-members": Access(API, _api("/api/v1/allocations/{}/members/", lambda o: o.allocation.pk)),
    "api:flavor-list": Access(API, _api("/api/v1/flavors/", query=lambda o: f"?allocation={o.allocation.pk}")),
    "api:image-list": Access(API, _api("/api/v1/images/", query=lambda o: f"?allocation={o.allocation.pk}")),
    "api:instance-list": Access(API_PERSONAL, _api("/api/v1/instances/"), ("GET", "POST"), data=lambda o: {
        "allocation": o.allocation.pk, "name": "grabbed", "image": "img-ubuntu", "flavor": "f-m3-small"},
        why="lists the holder's own instances; a launch names an allocation, which must be theirs (404)"),
    "api:instance-detail": Access(API, _api("/api/v1/instances/{}/", lambda o: o.instance.pk), ("GET", "DELETE")),
    "api:instance-actions": Access(API, _api("/api/v1/instances/{}/actions/", lambda o: o.instance.pk), POST,
                                   data=lambda o: {"action": "stop"}),
    "api:launch-detail": Access(API, _api("/api/v1/launches/{}/", lambda o: o.launch.pk)),
    "api:action-detail": Access(API, _api("/api/v1/actions/{}/", lambda o: o.action.pk)),
    "api:volume-list": Access(API_PERSONAL, _api("/api/v1/volumes/"), ("GET", "POST"), data=lambda o: {
        "allocation": o.allocation.pk, "name": "grabbed", "size_gb": 1},
        why="lists the holder's own volumes; a create names an allocation, which must be theirs (404)"),
    "api:volume-detail": Access(API, _api("/api/v1/volumes/{}/", lambda o: o.volume.pk), ("GET", "DELETE")),
    "api:volume-actions": Access(API, _api("/api/v1/volumes/{}/actions/", lambda o: o.volume.pk), POST,
                                 data=lambda o: {"action": "extend", "size_gb": 50}),
    "api:key-list": Access(API_PERSONAL, _api("/api/v1/keys/"), why="the holder's own SSH keys"),
    "api:key-detail": Access(API, _api("/api/v1/keys/{}/", lambda o: o.key.pk), ("DELETE",)),
    "api:security-group-list": Access(API, _api("/api/v1/security-groups/",
                                                query=lambda o: f"?allocation={o.allocation.pk}"), GET_POST,
                                      data=lambda o: {"name": "grabbed"}),
    "api:security-group-detail": Access(API, _api("/api/v1/security-groups/{}/", lambda o: o.group_id,
                                                  query=lambda o: f"?allocation={o.allocation.pk}"), ("DELETE",)),
    "api:floating-ip-list": Access(API, _api("/api/v1/floating-ips/",
                                             query=lambda o: f"?allocation={o.allocation.pk}"), GET_POST,
                                   data=lambda o: {"allocation": o.allocation.pk}),
    "api:floating-ip-detail": Access(API, _api("/api/v1/floating-ips/{}/", lambda o: o.ip_id,
                                               query=lambda o: f"?allocation={o.allocation.pk}"), ("DELETE",)),
    # A cluster head's calls (clusters/api.py): only that cluster's own token; a person's token is a 404.
    "api:cluster-node-resume": Access(API, _api("/api/v1/clusters/{}/nodes/w1/resume/", lambda o: o.cluster.pk), POST),
    "api:cluster-node-suspend": Access(API, _api("/api/v1/clusters/{}/nodes/w1/suspend/", lambda o: o.cluster.pk),
                                       POST),
    "api:cluster-report": Access(API, _api("/api/v1/clusters/{}/report/", lambda o: o.cluster.pk), POST,
                                 data=lambda o: {"nodes": [{"name": "w1", "state": "idle~"}], "jobs": []}),
    # any other /api/v1/ URL, e.g. an id that is not a positive number: 404 problem details
    "api:not-found": Access(API, _api("/api/v1/instances/-{}/", lambda o: o.instance.pk), GET_POST),
})
IS_API = (API, API_PERSONAL)

@pytest.fixture
def theirs(theirs):
    """The other allocation also has a pending invitation (for the invitation routes)."""
    from allocations.invitations import _invitation_create

    theirs.invitation, _ = _invitation_create(allocation=theirs.allocation, email="invitee-theirs@example.org",
                                              role="member", by=theirs.allocation.pi)
    theirs.cluster = _their_cluster(theirs)
    theirs.course = _their_course(theirs)
    theirs.stack = _their_stack(theirs)
    return theirs


def _their_course(theirs):
    """A class of the other allocation, with one seat (classes/)."""
    import datetime

    from classes.models import ClassTemplate, Course, Seat

    course = Course.objects.create(allocation=theirs.allocation, template=ClassTemplate.objects.first(),
                                   name="theirs-class", title="Their class", owner=theirs.allocation.pi,
                                   starts_on=datetime.date(2026, 12, 1), ends_on=datetime.date(2026, 12, 31))
    Seat.objects.create(course=course, email="their-student@example.org", username="theirstudent")
    return course


def _their_stack(theirs):
    """A finished stack of the other allocation (stacks/)."""
    return Stack.objects.create(
        allocation=theirs.allocation, name="theirs-stack", project_id=theirs.allocation.openstack_project_id,
        stack_id="stack-theirs", status="CREATE_COMPLETE", created_by=theirs.allocation.pi,
        template='heat_template_version: "2021-04-16"\nresources: {}\n')


def _their_cluster(theirs):
    """A ready cluster of the other allocation, with its head and one worker node (clusters/)."""
    from clusters.models import Cluster, ClusterNode
    from clusters.rendering import munge_key_new
    from clusters.services import token_hash

    cluster = Cluster.objects.create(
        allocation=theirs.allocation, created_by=theirs.allocation.pi, name="theirs-cluster", image_id="img-ubuntu",
        image_family="ubuntu", head_flavor_id="f-m3-small", head_flavor_name="m3.small", worker_flavor_id="f-m3-quad",
        worker_flavor_name="m3.quad", worker_vcpus=4, worker_ram_mb=15360, max_workers=1, state="ready",
        encrypted_munge_key=munge_key_new(), token_hash=token_hash("rcc_theirs-cluster-token"))
    ClusterNode.objects.create(cluster=cluster, name="head", role="head", state="active", server_id="srv-head")
    ClusterNode.objects.create(cluster=cluster, name="w1", role="worker")
    return cluster


# --- Helpers ----------------------------------------------------------------------------------

WATCHED = (Allocation, Membership, KeystoneIdentity, LedgerEntry, ApplicationCredential, Instance, Volume,
           LaunchRequest, CloudAction, SSHKey, Operation, Invitation, ApiToken, IdempotentRequest, Cluster, ClusterNode,
           ClusterEvent, ClusterOperation, Course, Seat, Stack, StackOperation, StackResource)


def rows() -> dict[str, list[dict]]:
    # A token's last-used time moves when it is used: that is bookkeeping, not a change.
    return {m.__name__: [{k: v for k, v in row.items() if k != "last_used_at"}
                         for row in m.objects.order_by("pk").values()] for m in WATCHED}


def problems_after(response, *, theirs, gateway, before: dict, callbacks=()) -> list[str]:
    """Everything a request that must not act or show did anyway, in words."""
    after = rows()
    return ([f"showed the other's {m!r}" for m in theirs.leaked_into(response.content.decode(errors="replace"))]
            + [f"changed {table} rows" for table in before if before[table] != after[table]]
            + gateway.problems()
            + [f"queued {len(callbacks)} on-commit callback(s)"] * bool(callbacks)
            + [f"sent mail: {m.subject}" for m in mail.outbox])


def send(client, method: str, target: str, data: dict, *, api: bool = False, token: str = ""):
    if api:
        headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
        if method == "GET":
            return client.get(target, **headers)
        return getattr(client, method.lower())(target, data, content_type="application/json", **headers)
    return client.get(target) if method == "GET" else client.post(target, data)


def assert_sent_to_sign_in(response, target: str) -> None:
    assert response.status_code == 302, f"anonymous {target} answered {response.status_code}, not a redirect"
    location = urlsplit(response["Location"])
    assert location.path == resolve_url(settings.LOGIN_URL), f"{target} redirected to {response['Location']}"
    assert parse_qs(location.query).get("next") == [target], response["Location"]


def _cases(methods_of: Callable[[Access], tuple[str, ...]]) -> list:
    cases = []
    for name, access in sorted(REGISTRY.items()):
        for method in methods_of(access):
            marks = [pytest.mark.xfail(strict=True, reason=access.leak)] if access.leak else []
            cases.append(pytest.param(name, method, id=f"{name}-{method}", marks=marks))
    return cases


# --- The registry matches the URLconf -----------------------------------------------------------

ADD_IT = ("Add it to REGISTRY in tests/portal/test_url_access.py: how to build its URL with ids of another "
          "person's allocation, which methods to try, and who may use it (MEMBERS, PERSONAL or PUBLIC, "
          "the last two with why).")


def test_every_route_is_in_the_registry():
    missing = {name: r.pattern for name, r in guarded_routes().items() if name not in REGISTRY}
    assert not missing, "Routes nobody has said who may use: " + ", ".join(
        f"{name} ({pattern})" for name, pattern in sorted(missing.items())) + ". " + ADD_IT


def test_the_registry_names_only_routes_that_exist():
    stale = sorted(set(REGISTRY) - set(guarded_routes()))
    assert not stale, f"REGISTRY names routes the URLconf no longer has (renamed or removed?): {stale}. " \
                      "Remove them, or add the renamed route under its new name."


def test_every_open_route_says_why():
    for name, access in REGISTRY.items():
        assert access.who in (MEMBERS, PERSONAL, PUBLIC, API, API_PERSONAL, MONITORING), name
        if access.who not in (MEMBERS, API):
            assert access.why, f"{name} is open to {access.who}: say why in REGISTRY"
        if access.who in (PUBLIC, MONITORING):
            assert set(access.statuses) == {"GET", "POST"}, f"{name}: give the statuses for GET and POST"


# --- Anonymous visitors -----------------------------------------------------------------------


@pytest.mark.parametrize("name,method", _cases(lambda access: ("GET", "POST")))
def test_anonymous_visitors_are_sent_to_sign_in(name, method, client, theirs, gateway,
                                                django_capture_on_commit_callbacks):
    access, before = REGISTRY[name], rows()
    target = access.url(theirs)
    if access.who in IS_API and method == "POST" and "POST" not in access.methods:
        method = access.methods[-1]  # e.g. DELETE
    with django_capture_on_commit_callbacks() as callbacks:
        response = send(client, method, target, access.data(theirs), api=access.who in IS_API)
    if access.who in (PUBLIC, MONITORING):
        assert response.status_code in access.statuses[method], f"{method} {target}: {response.status_code}"
    elif access.who in IS_API:
        assert response.status_code == 401 and response["Content-Type"] == "application/problem+json", \
            f"anonymous {method} {target}: {response.status_code}"
    else:
        assert_sent_to_sign_in(response, target)
    problems = problems_after(response, theirs=theirs, gateway=gateway, before=before, callbacks=callbacks)
    assert not problems, f"anonymous {method} {target}: " + "; ".join(problems)


# --- A signed-in person who is not a member ---------------------------------------------------


@pytest.mark.parametrize("name,method", _cases(lambda access: access.methods))
def test_a_non_member_cannot_use_another_allocations_ids(name, method, client, theirs, gateway,
                                                         django_capture_on_commit_callbacks):
    access, before = REGISTRY[name], rows()
    target = access.url(theirs)
    assert resolve(urlsplit(target).path).view_name == name, f"REGISTRY[{name!r}] builds a URL of another route"
    client.force_login(theirs.outsider)
    with django_capture_on_commit_callbacks() as callbacks:
        response = send(client, method, target, access.data(theirs), api=access.who in IS_API,
                        token=theirs.outsider_token)
    expected = {MEMBERS: (403, 404), PERSONAL: (200,), API: (403, 404)}.get(access.who) or (
        (200, 404) if access.who == API_PERSONAL else access.statuses[method])
    problems = [f"answered {response.status_code}, expected one of {expected}"] * (
        response.status_code not in expected)
    problems += problems_after(response, theirs=theirs, gateway=gateway, before=before, callbacks=callbacks)
    assert not problems, f"{method} {target} by a non-member: " + "; ".join(problems)


@pytest.mark.parametrize("name", ["instances:list", "instances:volumes", "instances:launch",
                                  "instances:security_groups", "instances:floating_ips"])
def test_pages_without_a_project_show_only_ones_own(name, client, theirs, gateway):
    client.force_login(theirs.outsider)
    response = client.get(reverse(name))
    assert response.status_code == 200
    assert not theirs.leaked_into(response.content.decode())
    assert not gateway.problems()


@pytest.mark.parametrize("name,resource_id", [("instances:security_group_delete", "sg-theirs"),
                                              ("instances:floating_ip_delete", "fip-theirs")])
def test_a_cloud_id_of_another_project_is_refused_in_ones_own(name, resource_id, client, theirs, gateway, allocation):
    client.force_login(theirs.outsider)
    # When they ask to delete the other project's id without naming a project (their own is used)
    response = client.post(reverse(name, args=[resource_id]))
    # Then Neutron is never asked to delete it, and the page says why
    assert response.status_code == 302 and response["Location"].endswith(f"?project={allocation.pk}")
    assert [m.level for m in get_messages(response.wsgi_request)] == [message_levels.ERROR]
    assert not gateway.problems()


def test_another_persons_download_link_stays_theirs(client, theirs, gateway):
    gateway.answers["identity.cloud_endpoint_get"] = lambda **kw: identity.CloudEndpoint(
        "https://keystone.example:5000/v3", "RegionOne", "public", "3")
    target = reverse("allocations:credential_download", args=[theirs.download_token])
    client.force_login(theirs.outsider)
    assert client.get(target).status_code == 404
    # The outsider's try did not use up the owner's one-time link.
    client.force_login(theirs.allocation.pi)
    response = client.get(target)
    assert response.status_code == 200 and theirs.secret in response.content.decode()


# --- The groups skipped above, checked at their door --------------------------------------------


def test_admin_is_for_staff_only(client, theirs):
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain and response.request["PATH_INFO"] == reverse("account_login")
    client.force_login(theirs.outsider)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    assert client.get(response["Location"]).status_code == 403
    change = client.get(reverse("admin:allocations_allocation_change", args=[theirs.allocation.pk]), follow=True)
    assert change.status_code in (403, 404) and not theirs.leaked_into(change.content.decode())


def test_the_sign_in_page_is_open(client):
    assert client.get(reverse("account_login")).status_code == 200
