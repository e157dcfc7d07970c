"""Fault injection (issue 12): the portal's cloud work converges while 20% of its requests to Nova,
Neutron, Cinder and Glance fail.

A proxy (tests/fixtures/faultproxy.py) sits in front of those four services; the portal reaches them
through it (a clouds.yaml whose service cloud has `<service>_endpoint_override`s), both in this
test's process and in a real Celery worker subprocess with a cloud timeout below the proxy's 10 s
stalls. Keystone is not faulted. A fifth of the requests fail, seeded: a 503, a reset connection, a
reset after the cloud did the work (the caller never hears), or a 10 s stall. Then 20 launches of 3
servers and 40 actions on them (`make test-load`; `make test` runs 8 and 16) must all end where they
should, with no duplicate server, no orphan port, volume or public IP, and status rows that show the
retries. Everything is checked as the cloud admin, whose connection does not go through the proxy.
"""
from __future__ import annotations

import os
import re
import time
from collections import Counter, defaultdict

import pytest

from instances.models import CloudAction, Instance, LaunchRequest
from portal.cloud import compute
from tests.cloud_sdk import connection_get
from tests.fixtures.cloud_worker import own_queues, worker_start, worker_stop
from tests.fixtures.faultproxy import fault_proxy
from tests.instances.integration_support import provision_directly, remove_directly
from tests.integration.cloud_checks import launch, m3_tiny, orphans, servers_with_public_ip

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
__all__ = ["fault_proxy", "own_queues"]

FAULT_RATE = float(os.environ.get("PORTAL_TEST_FAULT_RATE", "0.2"))  # 0 measures the cloud alone
CLOUD_TIMEOUT = 8  # seconds: below the proxy's 10 s stalls, above what the loaded cloud takes to create a server
PER_LAUNCH = 3
# Two actions each on 20 servers: 40 actions, and where each server must end.
PLANS = {
    ("stop", "start"): {"ACTIVE"},
    ("reboot_soft", "stop"): {"SHUTOFF"},
    ("shelve", "unshelve"): {"ACTIVE"},
    ("stop", "shelve"): {"SHELVED", "SHELVED_OFFLOADED"},
}
# The 20 launches and 40 actions (5 servers per plan) run in make test-load (several minutes);
# make test runs 8 launches and 16 actions (2 servers per plan): the same faults, the same checks.
SCALES = [pytest.param(8, 2, id="8-launches"), pytest.param(20, 5, id="20-launches", marks=pytest.mark.load)]
RETRYING = re.compile(r"retrying \(\d+/\d+\): [\w ]+ unavailable")
# The words a person reads for the four faulted services (portal.services.CLOUD_SERVICE_WORDS).
NAMED = re.compile(r"retrying \(\d+/\d+\): (Compute|Network|Block storage|Image) unavailable")
# Convergence, not speed (bench/ measures that): on this 2-core machine a build takes 15-20 s while twenty
# run at once, and 107 s for the twenty launches was seen on a quiet machine, 150 s not enough on a busy one.
DEADLINE_LAUNCHES = 300
DEADLINE_ACTIONS = 120


class Story:
    """Every step the status rows showed while the test watched them (a row's `history`, if it keeps one)."""

    def __init__(self):
        self.steps: dict[tuple[str, int], list[str]] = defaultdict(list)

    def look(self) -> None:
        for model in (LaunchRequest, CloudAction):
            for row in model.objects.all():
                seen = self.steps[(model.__name__, row.pk)]
                for step in [*_history_steps(row), row.step]:
                    if step and step not in seen:
                        seen.append(step)

    def retrying(self) -> dict[str, list[str]]:
        """Rows that said they were retrying, with what they said."""
        found = {f"{kind} {pk}": [s for s in steps if RETRYING.search(s)] for (kind, pk), steps in self.steps.items()}
        return {row: steps for row, steps in found.items() if steps}


def _history_steps(row) -> list[str]:
    history = getattr(row, "history", None) or []
    return [str(entry.get("step", "")) if isinstance(entry, dict) else str(entry) for entry in history]


def wait_all_final(model, pks, story: Story, *, timeout: float) -> list:
    deadline = time.monotonic() + timeout
    while True:
        story.look()
        rows = list(model.objects.filter(pk__in=pks))
        if all(r.is_final for r in rows) or time.monotonic() > deadline:
            return rows
        time.sleep(0.25)


@pytest.fixture
def faulty_portal(fault_proxy, own_queues, crowded_allocation, settings, monkeypatch, tmp_path):
    """The test process and one worker reaching Nova, Neutron, Cinder and Glance through the proxy
    (set up after the allocation, so the worker stops before its project is cleaned up)."""
    clouds = str(fault_proxy.clouds_yaml)
    settings.OS_CLIENT_CONFIG_FILE = clouds
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", clouds)  # openstacksdk prefers it to the file it is given
    settings.PORTAL_CLOUD_TIMEOUT = CLOUD_TIMEOUT
    env = {**own_queues.env, "OS_CLIENT_CONFIG_FILE": clouds, "PORTAL_CLOUD_TIMEOUT": str(CLOUD_TIMEOUT),
           # many quick retries: at a 20% failure rate a pass of a few requests often fails several times over
           "PORTAL_CLOUD_RETRIES": "30", "PORTAL_CLOUD_RETRY_BACKOFF": "1", "PORTAL_CLOUD_RETRY_BACKOFF_MAX": "4",
           "PORTAL_RECHECK_MIN": "0.5", "PORTAL_RECHECK_MAX": "3"}
    log = tmp_path / "worker.log"
    worker = worker_start(log, queues=own_queues.names, env=env, concurrency=8)
    yield fault_proxy, log
    worker_stop(worker)


@pytest.fixture
def crowded_allocation(devcloud, transactional_db):
    """A research allocation whose project holds 60 servers, their ports and boot volumes."""
    from tests.factories import UserFactory

    allocation = provision_directly(pi=UserFactory(), kind="research_cpu", title="Faults", sus=100000)
    pid = allocation.openstack_project_id
    admin = connection_get()
    admin.set_compute_quotas(pid, instances=100, cores=200, ram=1024 * 1024)
    admin.network.update_quota(pid, ports=200, floating_ips=20)
    admin.block_storage.update_quota_set(pid, volumes=40, gigabytes=2000)
    yield allocation
    remove_directly(allocation)


def launch_all(allocation, launches: int) -> list[LaunchRequest]:
    # every fifth launch takes public IPs, another fifth boots from new volumes (Nova makes them)
    flavor = m3_tiny()
    return [launch(allocation, f"f{i:02d}", count=PER_LAUNCH, flavor=flavor, assign_floating_ip=i % 5 == 0,
                   boot_volume_gb=20 if i % 5 == 1 else None) for i in range(launches)]


def act_when_allowed(allocation, server_id: str, action: str, *, timeout: float) -> CloudAction | str:
    """Ask for the action as the person would, once the portal's mirror shows the server ready for it."""
    from instances.services import ActionNotAllowed, instance_act, project_sync
    from portal.cloud.errors import CloudError

    deadline = time.monotonic() + timeout
    while True:
        instance = Instance.objects.filter(server_id=server_id, deleted_at__isnull=True).first()
        try:
            if instance is None:
                raise ActionNotAllowed("the portal does not show the server")
            return instance_act(user=allocation.pi, instance=instance, action=action)
        except ActionNotAllowed as exc:
            if time.monotonic() > deadline:
                return f"{action} on server {server_id} refused: {exc}"
        try:
            project_sync(allocation=allocation, full=True)
        except CloudError:
            pass  # the faulted cloud; the next round tries again
        time.sleep(0.5)


@pytest.mark.parametrize(("launches", "servers_per_plan"), SCALES)
def test_launches_and_actions_converge_through_a_fifth_of_requests_failing(
        faulty_portal, crowded_allocation, launches, servers_per_plan):
    proxy, worker_log = faulty_portal
    allocation, pid = crowded_allocation, crowded_allocation.openstack_project_id
    admin = connection_get()
    problems: list[str] = []
    story = Story()
    started = time.monotonic()

    # given a cloud that fails a fifth of the portal's requests
    proxy.rate = FAULT_RATE
    # when 20 people's launches of 3 servers arrive at once (8 in make test)
    asked_for = launch_all(allocation, launches)
    rows = wait_all_final(LaunchRequest, [r.pk for r in asked_for], story, timeout=DEADLINE_LAUNCHES)
    launch_seconds = time.monotonic() - started
    # then each succeeded with exactly its 3 servers, each ACTIVE (and with a public IP if asked)
    servers = list(admin.compute.servers(all_projects=True, project_id=pid))
    by_key = defaultdict(list)
    for server in servers:
        by_key[server.metadata.get(compute.META_REQUEST, "")].append(server)
    for row in rows:
        mine = by_key.pop(str(row.idempotency_key), [])
        if row.state != "succeeded":
            problems.append(f"launch {row.name} ({row.pk}) is {row.state} at step {row.step!r}: {row.error}")
        if sorted(int(s.metadata.get(compute.META_INDEX, 0)) for s in mine) != list(range(1, PER_LAUNCH + 1)):
            problems.append(f"launch {row.name}: servers {sorted((s.name, s.status) for s in mine)} "
                            f"instead of one each of {row.name}-1..{PER_LAUNCH}")
        inactive = [f"{s.name} {s.status}" for s in mine if s.status != "ACTIVE"]
        if row.state == "succeeded" and inactive:
            problems.append(f"launch {row.name} succeeded but {inactive}")
        if row.assign_floating_ip and row.state == "succeeded":
            with_ip = {s.id for s in mine} & servers_with_public_ip(pid)
            if len(with_ip) != PER_LAUNCH:
                problems.append(f"launch {row.name}: public IPs on {len(with_ip)} of {PER_LAUNCH} servers")
    if by_key:
        problems.append(f"servers of no launch: {[(s.name, dict(s.metadata)) for v in by_key.values() for s in v]}")

    # when 40 actions, two on each of 20 servers (16 on 8 in make test), are asked for as people would ask
    succeeded = [r for r in rows if r.state == "succeeded"]
    targets = [sid for r in succeeded for sid in r.server_ids][:servers_per_plan * len(PLANS)]
    plans = [plan for plan in PLANS for _ in range(servers_per_plan)]
    if len(targets) < len(plans):
        problems.append(f"only {len(targets)} servers to act on (from launches that succeeded), not {len(plans)}")
    actions: list[CloudAction] = []
    started_actions = time.monotonic()
    for round_ in (0, 1):
        asked = []
        for server_id, plan in zip(targets, plans, strict=False):
            got = act_when_allowed(allocation, server_id, plan[round_], timeout=60)
            if isinstance(got, str):
                problems.append(got)
            else:
                asked.append(got)
        done = wait_all_final(CloudAction, [a.pk for a in asked], story, timeout=DEADLINE_ACTIONS)
        problems += [f"{a.action} on {a.target_name} is {a.state} at step {a.step!r}: {a.error}"
                     for a in done if a.state != "succeeded"]
        actions += done
    # then every server ends where its two actions lead, settled
    for server_id, plan in zip(targets, plans, strict=False):
        server = admin.compute.get_server(server_id)
        if server.status not in PLANS[plan] or server.task_state:
            problems.append(f"{server.name} after {' + '.join(plan)} is {server.status} "
                            f"(task {server.task_state}), not {sorted(PLANS[plan])}")
    action_seconds = time.monotonic() - started_actions
    proxy.rate = 0.0

    # and no duplicate server, nothing orphaned (Nova and Neutron may take a moment to clean up)
    by_name = Counter(s.name for s in admin.compute.servers(all_projects=True, project_id=pid))
    problems += [f"{n} servers named {name}" for name, n in by_name.items() if n > 1]
    if len(by_name) != launches * PER_LAUNCH:
        problems.append(f"{sum(by_name.values())} servers in the project, not {launches * PER_LAUNCH}")
    deadline = time.monotonic() + 60
    while (left := orphans(pid)) and time.monotonic() < deadline:
        time.sleep(2)
    problems += [f"orphan {what}" for what in left]
    # and the status rows tell the story: some showed that they were retrying for a service
    retrying = story.retrying()
    if not retrying:
        problems.append("no status row ever showed 'retrying (n/N): … unavailable'; steps seen: "
                        f"{sorted({s for steps in story.steps.values() for s in steps})}")
    elif not any(NAMED.search(step) for steps in retrying.values() for step in steps):
        problems.append("the rows said they were retrying but never which service did not answer: "
                        f"{sorted({step for steps in retrying.values() for step in steps})[:6]}")

    print(f"\nfault proxy: {proxy.summary()}")
    print("faults by request:", ", ".join(f"{kind} {req} ×{n}" for (kind, req), n in
                                          sorted(proxy.counts_by_request.items(), key=lambda kv: -kv[1])[:25]))
    print("launch rows (state, step):", dict(Counter((r.state, r.step) for r in rows)))
    print(f"launches: {sum(r.state == 'succeeded' for r in rows)}/{launches} succeeded in {launch_seconds:.0f} s; "
          f"actions: {sum(a.state == 'succeeded' for a in actions)}/{len(actions)} succeeded in "
          f"{action_seconds:.0f} s")
    print(f"rows that showed retrying: {len(retrying)} of {len(story.steps)}; e.g. "
          + "; ".join(f"{row}: {steps[:3]}" for row, steps in list(retrying.items())[:5]))
    assert sum(proxy.counts.values()) > 0, "the proxy injected no fault"
    assert not problems, "\n".join(problems) + f"\n(worker log: {worker_log})"
