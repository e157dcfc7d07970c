"""Another person's allocation with a row of every kind, and the cloud gateway recorded.

For tests that check one person cannot reach another's things: `theirs` builds the other PI's
allocation (project proj-2) and makes `user` (PI of proj-1) the outsider; `gateway` records every
call to a `portal.cloud.*` function, so a test can say nothing was made, changed or read in the
other's project.
"""
from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from celery.app.task import Task
from django.utils.html import escape

from allocations import credentials
from allocations.models import Allocation, ApplicationCredential, LedgerEntry, Membership
from instances.models import CloudAction, Instance, LaunchRequest, SSHKey, Volume
from portal.cloud import network
from portal.cloud.errors import CloudUnavailable
from tests.factories import UserFactory
from tests.instances.conftest import cloud, other_allocation  # noqa: F401 - fixtures used here

OTHER_PROJECT = "proj-2"


@dataclass
class Theirs:
    allocation: Allocation
    outsider: object  # signed in, PI of their own allocation, not a member of this one
    instance: Instance
    volume: Volume
    launch: LaunchRequest
    action: CloudAction
    key: SSHKey
    credential: ApplicationCredential
    membership: Membership  # a colleague's, not the PI's
    download_token: str = ""  # a one-time clouds.yaml link of the credential
    api_token: object = None  # the other PI's personal API token (row)
    outsider_token: str = ""  # the outsider's own read-write API token
    group_id: str = "sg-theirs"
    ip_id: str = "fip-theirs"
    secret: str = "theirs-s3cret-value"

    @property
    def markers(self) -> list[str]:
        """Text that only the other allocation's pages show."""
        return [self.allocation.title, self.allocation.pi.email, self.membership.user.email, self.instance.name,
                self.volume.name, self.launch.name, self.key.name, self.key.public_key, self.credential.name,
                "theirs-ledger-line", "theirs-group", "192.0.2.20", self.secret,
                "their-student@example.org", "theirs-class"]

    def leaked_into(self, body: str) -> list[str]:
        return [m for m in self.markers if m in body or escape(m) in body]


@pytest.fixture
def theirs(cloud, other_allocation, allocation, user):  # noqa: F811 - fixtures imported above
    other, pi = other_allocation, other_allocation.pi
    server = cloud.add("theirs-server", project_id=OTHER_PROJECT, user_id=f"ks-{pi.pk}")
    instance = Instance.objects.create(allocation=other, project_id=OTHER_PROJECT, server_id=server.id,
                                       name=server.name, status="ACTIVE", flavor_name="m3.small", vcpus=2,
                                       created_by=pi)
    volume = Volume.objects.create(allocation=other, project_id=OTHER_PROJECT, volume_id="vol-theirs",
                                   name="theirs-volume", size_gb=10, status="available", is_bootable=True)
    launch = LaunchRequest.objects.create(allocation=other, project_id=OTHER_PROJECT, name="theirs-launch",
                                          flavor_id="f-m3-small", flavor_name="m3.small", requested_by=pi,
                                          state="running", step="building")
    # Finished, so a missing gate would be free to queue a new action on the server.
    action = CloudAction.objects.create(allocation=other, project_id=OTHER_PROJECT, target_id=server.id,
                                        target_name=server.name, action="stop", requested_by=pi, state="succeeded")
    key = SSHKey.objects.create(user=pi, name="theirs-key", public_key="ssh-ed25519 AAAAtheirskey theirs@laptop")
    credential = ApplicationCredential.objects.create(user=pi, allocation=other, keystone_id="ac-theirs",
                                                      name="theirs-credential")
    membership = other.memberships.create(user=UserFactory(username="their-colleague"), role="member",
                                          keystone_role_granted=True)
    LedgerEntry.objects.create(allocation=other, kind="usage", sus=-5, resource_id=server.id,
                               resource_name="theirs-ledger-line", user=pi)
    o = Theirs(allocation=other, outsider=user, instance=instance, volume=volume, launch=launch, action=action,
               key=key, credential=credential, membership=membership)
    o.download_token = credentials.credential_download_tokens_issue(credential=credential, secret=o.secret)[
        "clouds.yaml"]
    from api.tokens import token_create

    o.api_token, _ = token_create(user=pi, name="theirs-token", scope="write", expires_in_days=30)
    _, o.outsider_token = token_create(user=user, name="mine", scope="write", expires_in_days=30)
    return o


# --- The gateway, recorded --------------------------------------------------------------------

GATEWAY_MODULES = ("compute", "network", "image", "block_storage", "identity", "quotas", "usage", "admin",
                   "orchestration")
# A gateway function whose name ends like this only reads; every other one changes the cloud.
READS = re.compile(r"(_list|_get|_find|_exists|_ping|_usage|_url|_log|_id|_projects|_list_all|_events|_resources"
                   r"|_validate|_preview)$")


def _gateway_functions() -> dict[tuple, Callable]:
    """Every public function of the gateway modules as defined (read at import, before any patch)."""
    found = {}
    for short in GATEWAY_MODULES:
        module = importlib.import_module(f"portal.cloud.{short}")
        for name, fn in vars(module).items():
            if inspect.isfunction(fn) and fn.__module__ == module.__name__ and not name.startswith("_"):
                found[(module, short, name)] = fn
    return found


GATEWAY = _gateway_functions()


@dataclass
class Call:
    function: str  # "network.floating_ip_create"
    kwargs: dict

    @property
    def project_id(self) -> str | None:
        return getattr(self.kwargs.get("scope"), "project_id", None)

    @property
    def is_write(self) -> bool:
        return not READS.search(self.function)


@dataclass
class Gateway:
    answers: dict = field(default_factory=dict)  # "module.function" -> the fake that answers
    calls: list[Call] = field(default_factory=list)
    enqueued: list[str] = field(default_factory=list)

    def problems(self, *, other_project: str = OTHER_PROJECT) -> list[str]:
        """What a request that must not act did anyway, in words."""
        return ([f"called {c.function}({c.kwargs})" for c in self.calls if c.is_write]
                + [f"called {c.function} in the other's project" for c in self.calls if c.project_id == other_project]
                + [f"called the admin gateway: {c.function}" for c in self.calls if c.function.startswith("admin.")]
                + [f"enqueued Celery task {name}" for name in self.enqueued])


def _unreachable(name: str) -> Callable:
    def answer(*args, **kwargs):
        raise CloudUnavailable(f"{name} is not faked in this test")
    return answer


@pytest.fixture
def gateway(cloud, monkeypatch):  # noqa: F811 - fixture imported above
    """Every gateway function recorded. The `cloud` fixture's fakes answer; so do Neutron's lists, per
    project (a missing gate would find the other's group and address to delete); anything else
    answers as an unreachable cloud. Celery tasks are recorded, never sent."""
    rec = Gateway()
    for (module, short, name), original in GATEWAY.items():
        current, key = getattr(module, name), f"{short}.{name}"
        rec.answers[key] = current if current is not original else _unreachable(key)

        def recorded(*args, _key=key, **kwargs):
            rec.calls.append(Call(_key, kwargs))
            return rec.answers[_key](*args, **kwargs)

        monkeypatch.setattr(module, name, recorded)
    groups = {"proj-1": [network.SecurityGroup("sg-own", "default", "", ())],
              OTHER_PROJECT: [network.SecurityGroup("sg-theirs", "theirs-group", "", ())]}
    ips = {"proj-1": [network.FloatingIP("fip-own", "192.0.2.10", "DOWN", "", "", "net-pub")],
           OTHER_PROJECT: [network.FloatingIP("fip-theirs", "192.0.2.20", "DOWN", "", "", "net-pub")]}
    rec.answers["network.security_group_list"] = lambda *, scope: groups.get(scope.project_id, [])
    rec.answers["network.floating_ip_list"] = lambda *, scope: ips.get(scope.project_id, [])
    rec.answers["block_storage.snapshot_list"] = lambda *, scope: []

    def no_sdk(*args, **kwargs):
        raise AssertionError("a gateway function reached the SDK: add its module to GATEWAY_MODULES")

    monkeypatch.setattr("portal.cloud.connection.connection_for", no_sdk)
    monkeypatch.setattr("portal.cloud.connection.admin_connection", no_sdk)
    monkeypatch.setattr(Task, "apply_async", lambda task, *a, **k: rec.enqueued.append(task.name))
    return rec
