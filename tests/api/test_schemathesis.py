"""schemathesis against a live test server: every operation of /api/schema/, called with a real
read-write token of a member of an allocation, answers without a server error and as its schema
says (documented status, content type, headers and body), and refuses what the schema forbids.

The cloud is faked at the gateway (the live server runs in this process, so the monkeypatches
apply): the fake cloud answers compute, images and networks, a few Neutron writes are answered in
memory, and every other gateway function answers as an unreachable cloud (503 problem details);
the SDK itself is unreachable and Celery tasks are recorded, never sent. The test ends by checking
that nothing was written anywhere but those fakes.

schemathesis's pytest plugin needs `Node._nodeid`, which pytest 9 no longer has, so the engine
(what `schemathesis run` uses) runs here directly and its failed checks are collected."""
from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, defaultdict

import pytest
import schemathesis
from schemathesis.engine import Status, events

from allocations.models import LedgerEntry
from api.common import TokenRateThrottle
from api.tokens import token_create
from instances.models import CloudAction, LaunchRequest, SSHKey, Volume
from instances.services import project_sync
from portal.cloud import network
from tests.portal.conftest import gateway  # noqa: F401 - every gateway function recorded

pytestmark = pytest.mark.django_db(transaction=True)

PUBLIC_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl api@example"


def _config() -> schemathesis.Config:
    return schemathesis.Config.from_dict({
        "seed": 9,
        "workers": 1,  # CPython 3.11.7: two threads building ASTs at once (hypothesis) raise SystemError
        "generation": {"max-examples": 6, "database": "none", "mode": "all"},
        # One unexpected method per path is enough to see 405 problem details; six would double the run.
        "phases": {"coverage": {"unexpected-methods": ["PATCH"]}, "stateful": {"enabled": False}},
        "checks": {
            # A body the schema allows can still name a flavor or image the project does not have;
            # the launch form refuses it with 400, which is right.
            "positive_data_acceptance": {"enabled": False},
        },
    })


class World:
    """One of everything the user's token reaches, and the values that name them."""

    def __init__(self, *, cloud, allocation, user):
        self.keys = itertools.count()
        self.seen, self.lock = Counter(), threading.Lock()
        server, doomed = cloud.add("box"), cloud.add("doomed")
        project_sync(allocation=allocation)
        instance = allocation.instances.get(server_id=server.id)
        volume, doomed_volume = (
            Volume.objects.create(allocation=allocation, project_id="proj-1", volume_id=f"vol-{name}", name=name,
                                  size_gb=10, status="available", is_bootable=False) for name in ("data", "scratch"))
        launch = LaunchRequest.objects.create(allocation=allocation, project_id="proj-1", name="earlier",
                                              flavor_id="f-m3-small", flavor_name="m3.small", requested_by=user,
                                              state="succeeded")
        action = CloudAction.objects.create(allocation=allocation, project_id="proj-1", target_id=server.id,
                                            target_name=server.name, action="stop", requested_by=user,
                                            state="succeeded")
        key = SSHKey.objects.create(user=user, name="laptop", public_key=PUBLIC_KEY, fingerprint="SHA256:x")
        LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=-5, resource_id=server.id,
                                   resource_name="box", user=None)
        # An action leaves its row open (no worker runs here), refusing the next one with 409: what
        # is deleted is not what is acted on.
        self.path_ids = {
            "/api/v1/allocations/{id}/": allocation.pk, "/api/v1/allocations/{id}/ledger/": allocation.pk,
            "/api/v1/allocations/{id}/members/": allocation.pk, "/api/v1/instances/{id}/": instance.pk,
            ("DELETE", "/api/v1/instances/{id}/"): allocation.instances.get(server_id=doomed.id).pk,
            "/api/v1/instances/{id}/actions/": instance.pk, "/api/v1/launches/{id}/": launch.pk,
            "/api/v1/actions/{id}/": action.pk, "/api/v1/volumes/{id}/": volume.pk,
            ("DELETE", "/api/v1/volumes/{id}/"): doomed_volume.pk,
            "/api/v1/volumes/{id}/actions/": volume.pk, "/api/v1/keys/{id}/": key.pk,
            "/api/v1/security-groups/{group_id}/": "sg-own", "/api/v1/floating-ips/{ip_id}/": "fip-own",
        }
        # Body fields that must name something real for the request to get past the forms.
        self.fields = {"allocation": allocation.pk, "flavor": "f-m3-small", "image": "img-ubuntu", "name": "node",
                       "boot_volume": "", "count": 1, "root_disk_gb": None, "ssh_key": key.pk, "network": "",
                       "security_groups": [], "user_data": "", "flavor_id": "f-m3-quad", "server_id": server.id,
                       "public_key": PUBLIC_KEY, "snapshot_id": "", "image_id": ""}

    def aim(self, case):
        """Every other schema-valid case of each operation (the first one included) is pointed at
        real rows and real flavors, so that success answers are checked too."""
        if not case.meta.generation.mode.is_positive:
            return case
        operation = case.operation
        with self.lock:
            seen = self.seen[(operation.method, operation.path)]
            self.seen[(operation.method, operation.path)] += 1
        if seen % 2:
            return case
        aimed = self.path_ids.get((operation.method.upper(), operation.path), self.path_ids.get(operation.path))
        for name in (case.path_parameters or {}) if aimed is not None else ():  # a cluster's own routes: none
            case.path_parameters[name] = aimed
        if case.headers and "Idempotency-Key" in case.headers:  # a key of its own: no 422 for a reused one
            case.headers["Idempotency-Key"] = f"aimed-{next(self.keys)}"
        if case.query and "allocation" in case.query:
            case.query["allocation"] = self.fields["allocation"]
        if isinstance(case.body, dict):
            case.body.update({k: v for k, v in self.fields.items() if k in case.body})
        return case


@pytest.fixture
def world(cloud, gateway, allocation, user, monkeypatch):  # noqa: F811 - gateway imported above
    monkeypatch.setitem(TokenRateThrottle.THROTTLE_RATES, "token", "100000/minute")
    # The Neutron writes the fake cloud does not answer: in memory, never in a cloud.
    groups = [network.SecurityGroup("sg-own", "default", "", ())]
    ips = [network.FloatingIP("fip-own", "192.0.2.10", "DOWN", "", "", "net-pub")]

    def own(items):
        return lambda *, scope: list(items) if scope.project_id == "proj-1" else []

    gateway.answers.update({
        "network.security_group_list": own(groups), "network.floating_ip_list": own(ips),
        "network.security_group_delete": lambda *, scope, group_id: None,
        "network.floating_ip_create": lambda *, scope, external_network_id, description="": ips[0],
        "network.floating_ip_delete": lambda *, scope, floating_ip_id: None,
    })
    return World(cloud=cloud, allocation=allocation, user=user)


@pytest.fixture
def api_schema(live_server, world, user):
    _, raw = token_create(user=user, name="schemathesis", scope="write", expires_in_days=1)
    loaded = schemathesis.openapi.from_url(f"{live_server.url}/api/schema/?format=json", config=_config())
    # Connection: close, so that no server thread keeps a database session open after the run.
    loaded.config.update(base_url=live_server.url,
                         headers={"Authorization": f"Bearer {raw}", "Connection": "close"})

    @loaded.hook
    def map_case(context, case):
        return world.aim(case)

    return loaded


def run(schema) -> tuple[list[str], dict]:
    """Every phase over every operation: the failed checks in words, and the statuses each
    operation answered."""
    failures, statuses = [], defaultdict(Counter)
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.FatalError):
            raise event.exception
        if isinstance(event, events.NonFatalError):
            failures.append(f"{event.label}: error {event.value!r}")
        if isinstance(event, events.ScenarioFinished):
            for interaction in event.recorder.interactions.values():
                if interaction.response is not None:
                    statuses[event.recorder.label][interaction.response.status_code] += 1
            for checks in event.recorder.checks.values():
                failures += [f"{event.recorder.label}: {c.name}: {c.failure_info.failure.title}: "
                             f"{c.failure_info.failure.message[:400]}\n{c.failure_info.code_sample}"
                             for c in checks if c.status == Status.FAILURE]
    return sorted(set(failures)), statuses


def test_every_operation_answers_as_documented(api_schema, gateway, caplog):  # noqa: F811
    caplog.set_level("ERROR", logger="django.request")  # thousands of expected 4xx warnings otherwise
    started = time.monotonic()
    failures, statuses = run(api_schema)
    took = time.monotonic() - started
    print(f"{sum(sum(c.values()) for c in statuses.values())} requests, {len(statuses)} operations, {took:.1f}s")
    for label, counts in sorted(statuses.items()):
        print(f"  {label}: {dict(sorted(counts.items()))}")

    assert not failures, f"{len(failures)} failures:\n" + "\n\n".join(failures)
    assert len(statuses) == len(list(api_schema.get_all_operations()))
    assert not [label for label, counts in statuses.items() if any(code >= 500 and code != 503 for code in counts)]
    # Every operation succeeded at least once, so the success bodies were checked too.
    # (The head node's routes take only its cluster's own token, never a person's: tests/clusters checks
    # their successes; here they must refuse as documented.)
    assert [label for label, counts in statuses.items() if not any(200 <= code < 300 for code in counts)
            and "/api/v1/clusters/" not in label] == []
    # Nothing reached a cloud outside the fakes; no task was sent.
    written = {c.function for c in gateway.calls if c.is_write}
    assert written <= {"compute.keypair_create", "network.security_group_create", "network.security_group_rule_create",
                       "network.security_group_delete", "network.floating_ip_create", "network.floating_ip_delete",
                       "compute.keypair_delete"}, written
    assert not [c for c in gateway.calls if c.project_id not in (None, "proj-1")]
