"""A fake cloud for unit tests, faked only at the gateway functions (portal.cloud.*)."""
from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from portal.cloud import block_storage, compute, image, network, quotas
from portal.cloud.compute import Address, Flavor, Server
from tests.fixtures.allocations import make_allocation

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
FLAVORS = [
    Flavor("f-m3-small", "m3.small", 2, 6144, 20, {"portal:family": "cpu"}),
    Flavor("f-m3-quad", "m3.quad", 4, 15360, 20, {"portal:family": "cpu"}),
    Flavor("f-r3-large", "r3.large", 64, 512000, 60, {"portal:family": "large-memory"}),
    Flavor("f-g3-small", "g3.small", 4, 15360, 60, {"portal:family": "gpu", "resources:VGPU": "1",
                                                    "portal:gpu_fraction": "1/5", "portal:gpu_memory_gb": "8"}),
    Flavor("f-g3-xl", "g3.xl", 32, 128000, 60, {"portal:family": "gpu", "resources:VGPU": "1",
                                                "portal:gpu_fraction": "1", "portal:gpu_memory_gb": "40"}),
]
IMAGES = [image.Image("img-ubuntu", "Featured-Ubuntu24", "active", "public", "admin", 20, 1, True)]
NETWORKS = [network.Network("net-1", "private", False, False, "proj-1", ("sub-1",)),
            network.Network("net-pub", "public", True, False, "admin", ("sub-pub",))]


def fake_service_identity():
    from portal.cloud.connection import Identity

    return Identity(key="service", username="portal-service", password="x")


class FakeCloud:
    def __init__(self, project_id: str = "proj-1"):
        self.project_id = project_id
        self.servers: dict[str, Server] = {}
        self.calls: Counter = Counter()
        self.ids = itertools.count(1)
        self.clock = T0
        self.build_status = "ACTIVE"  # what a new server becomes on the next look
        self.fault = ""
        self.events: list = []
        self.resize_fails = False  # a test that needs Nova to refuse a resize sets it
        self.resized_from: dict[str, Flavor] = {}  # server -> its flavor before a resize, until confirmed

    def tick(self):
        self.clock += timedelta(seconds=1)
        return self.clock

    @staticmethod
    def user_of(scope) -> str:
        return scope.identity.key.removeprefix("user:")

    def add(self, name: str, *, status: str = "ACTIVE", flavor: Flavor = FLAVORS[0], metadata=None,
            project_id: str | None = None, user_id: str = "cli-user") -> Server:
        sid = f"srv-{next(self.ids):04d}"
        server = Server(id=sid, name=name, status=status, task_state="", project_id=project_id or self.project_id,
                        user_id=user_id,
                        flavor=flavor, image_id="img-ubuntu",
                        addresses=(Address("private", f"10.0.0.{len(self.servers) + 10}", "fixed"),),
                        metadata=dict(metadata or {}), key_name="", security_groups=("default",), volume_ids=(),
                        is_locked=False, fault="", created_at=self.clock, updated_at=self.tick())
        self.servers[sid] = server
        return server

    def set(self, server_id: str, **changes):
        self.servers[server_id] = replace(self.servers[server_id], updated_at=self.tick(), **changes)

    # --- gateway fakes ---
    def server_list(self, *, scope, changes_since=None, name=None):
        self.calls["server_list"] += 1
        for sid, s in list(self.servers.items()):
            if s.status == "BUILD" and s.metadata.get(compute.META_REQUEST):
                self.set(sid, status=self.build_status, fault=self.fault if self.build_status == "ERROR" else "")
        result = [s for s in self.servers.values() if s.project_id == scope.project_id]
        if changes_since is not None:
            result = [s for s in result if s.updated_at >= changes_since]
        else:
            result = [s for s in result if s.status != "DELETED"]
        if name:
            result = [s for s in result if s.name.startswith(name.lstrip("^"))]
        return result

    def server_get(self, *, scope, server_id):
        self.calls["server_get"] += 1
        s = self.servers.get(server_id)
        if s is None or s.status == "DELETED":
            from portal.cloud.errors import NotFound
            raise NotFound()
        return s

    def server_create(self, *, scope, name, flavor_id, metadata, **kwargs):
        self.calls["server_create"] += 1
        flavor = next(f for f in FLAVORS if f.id == flavor_id)
        return self.add(name, status="BUILD", flavor=flavor, metadata=metadata, project_id=scope.project_id,
                        user_id=self.user_of(scope))

    def server_delete(self, *, scope, server_id):
        self.calls["server_delete"] += 1
        if server_id in self.servers:
            self.set(server_id, status="DELETED")

    def server_resize(self, *, scope, server_id, flavor_id):
        """Like Nova: the server runs with the new flavor and waits for a confirm or a revert."""
        self.calls["server_resize"] += 1
        if self.resize_fails:
            # like the one-host devcloud without allow_resize_to_same_host: Nova logs an error, stays ACTIVE
            self.events.append(compute.ServerEvent("resize", "req-1", "Error", self.tick()))
            self.set(server_id, status="ACTIVE")
            return
        self.resized_from[server_id] = self.servers[server_id].flavor
        self.events.append(compute.ServerEvent("resize", "req-1", "", self.tick()))
        self.set(server_id, status="VERIFY_RESIZE", flavor=next(f for f in FLAVORS if f.id == flavor_id))

    def server_event_list(self, *, scope, server_id):
        return list(reversed(self.events))

    def server_action(self, *, scope, server_id, action):
        self.calls[f"action:{action}"] += 1
        after = {"stop": "SHUTOFF", "start": "ACTIVE", "suspend": "SUSPENDED", "resume": "ACTIVE",
                 "shelve": "SHELVED_OFFLOADED", "unshelve": "ACTIVE", "reboot_soft": "ACTIVE"}
        if action in ("lock", "unlock"):
            self.set(server_id, is_locked=action == "lock")
        elif action in ("resize_confirm", "resize_revert"):
            before = self.resized_from.pop(server_id, self.servers[server_id].flavor)
            self.set(server_id, status="ACTIVE", **({"flavor": before} if action == "resize_revert" else {}))
        else:
            self.set(server_id, status=after.get(action, "ACTIVE"))


@pytest.fixture
def cloud(monkeypatch):
    fake = FakeCloud()
    for name in ("server_list", "server_get", "server_create", "server_delete", "server_action", "server_resize",
                 "server_event_list"):
        monkeypatch.setattr(compute, name, getattr(fake, name))

    def counted(name, value):
        def fn(**kwargs):
            fake.calls[name] += 1
            return value
        return fn

    monkeypatch.setattr(compute, "flavor_list", counted("flavor_list", FLAVORS))
    monkeypatch.setattr(compute, "keypair_get", lambda **kw: None)
    monkeypatch.setattr(compute, "keypair_create", lambda **kw: compute.Keypair(kw["name"], "fp", kw["public_key"]))
    monkeypatch.setattr("portal.cloud.connection.service_identity", fake_service_identity)
    monkeypatch.setattr(image, "image_list", counted("image_list", IMAGES))
    monkeypatch.setattr(network, "network_list", counted("network_list", NETWORKS))
    monkeypatch.setattr(network, "security_group_list", counted("security_group_list", [
        network.SecurityGroup("sg-default", "default", "", ())]))
    monkeypatch.setattr(network, "security_group_create",
                        lambda **kw: network.SecurityGroup("sg-new", kw["name"], "", ()))
    monkeypatch.setattr(network, "security_group_rule_create", lambda **kw: None)
    monkeypatch.setattr(block_storage, "volume_list", counted("volume_list", []))
    # The project's quota (issue 14, part B): roomy unless a test sets cloud.quota to its own rows.
    fake.quota = roomy_quota()

    def project_quota_usage(*, scope):
        fake.calls["project_quota_usage"] += 1
        return list(fake.quota)

    monkeypatch.setattr(quotas, "project_quota_usage", project_quota_usage)
    return fake


def roomy_quota(**used_and_limits):
    """Quota rows as the gateway returns them; `cores=(106, 150)` sets one row's used and limit."""
    from portal.cloud.quotas import QuotaUse

    rows = {"instances": ("Instances", 0, 100), "cores": ("vCPUs", 0, 1000), "ram_gb": ("RAM (GB)", 0, 4000),
            "volume_gb": ("Volume storage (GB)", 0, 10000), "volumes": ("Volumes", 0, 100),
            "floating_ips": ("Public IPs", 0, 10)}
    for key, (used, limit) in used_and_limits.items():
        rows[key] = (rows[key][0] if key in rows else {"gpus": "GPUs (vGPU)"}.get(key, key), used, limit)
    return [QuotaUse(name, used, limit, key=key) for key, (name, used, limit) in rows.items()]


@pytest.fixture
def allocation(db, user):
    return make_allocation(pi=user, project_id="proj-1", kind="research_gpu")


@pytest.fixture
def other_allocation(db):
    return make_allocation(project_id="proj-2", title="Someone else's")
