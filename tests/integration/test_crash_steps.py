"""Crash in every step (issue 12): the worker dies right after each step of a project's first launch
has gone through the cloud, and a new worker finishes the launch without leaving or duplicating
anything.

For each step (network, subnet, router, router interface, security group, its first rule, server,
public IP create, public IP associate) a fresh project is provisioned; the fault proxy (no random
faults here) watches the portal's requests and, when that step's request has succeeded upstream,
SIGKILLs the worker before the answer reaches it, so the cloud did the work and the portal never
heard. A second worker is started and the launch must complete: the row succeeded, the server
ACTIVE with a public IP, `portal-net` with one subnet and one router (gateway on the public network,
an interface on the subnet), one `ssh-icmp` group with one rule each for SSH and ping, one server,
one public IP; then a second launch in the project works and reuses all of it.

Resuming: the killed worker's message stays unacknowledged in Redis until the broker's visibility
timeout (an hour) redelivers it; rather than shorten that timeout (which would also redeliver the
runner's long countdowns), the test runs the beat's sweep itself, instances.tasks.resume_stale_launches
with PORTAL_LAUNCH_STALE_SECONDS at 0, as the beat would after that many seconds.
"""
from __future__ import annotations

import os
import signal
from collections import Counter

import pytest

from instances.models import LaunchRequest
from tests.cloud_sdk import connection_get
from tests.fixtures.celery_worker import wait_for
from tests.fixtures.cloud_worker import own_queues, worker_start, worker_stop
from tests.fixtures.faultproxy import fault_proxy
from tests.instances.integration_support import provision_directly, remove_directly
from tests.integration.cloud_checks import launch, orphans, servers_with_public_ip

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
__all__ = ["fault_proxy", "own_queues"]

# (step, the request that does it): the worker dies once that request has succeeded upstream.
STEPS = [
    ("network", "POST", r"/v2\.0/networks$"),
    ("subnet", "POST", r"/v2\.0/subnets$"),
    ("router", "POST", r"/v2\.0/routers$"),
    ("router interface", "PUT", r"/v2\.0/routers/[^/]+/add_router_interface$"),
    ("security group", "POST", r"/v2\.0/security-groups$"),
    ("security group rule", "POST", r"/v2\.0/security-group-rules$"),
    ("server", "POST", r"/v2\.1/servers$"),
    ("public IP create", "POST", r"/v2\.0/floatingips$"),
    ("public IP associate", "PUT", r"/v2\.0/floatingips/[^/]+$"),
]
# `make test` kills the worker after three steps, one of each kind: the network's setup (the subnet:
# a network without one broke every later launch), the server's create, and a step once the server
# is ACTIVE; `make test-load` (marker load) after every step.
IN_EVERY_RUN = {"subnet", "server", "public IP associate"}
DEFAULT_GROUP = "ssh-icmp"


@pytest.fixture
def new_project(devcloud, transactional_db):
    """A research allocation just provisioned: a project in which nothing was launched yet."""
    from tests.factories import UserFactory

    allocation = provision_directly(pi=UserFactory(), kind="research_cpu", title="Crash steps")
    yield allocation
    remove_directly(allocation)


@pytest.fixture
def worker_env(fault_proxy, own_queues, new_project, settings, monkeypatch):
    """Workers (and this process) reach Nova and Neutron through the proxy, on this test's own queues."""
    clouds = str(fault_proxy.clouds_yaml)
    settings.OS_CLIENT_CONFIG_FILE = clouds
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", clouds)
    return {**own_queues.env, "OS_CLIENT_CONFIG_FILE": clouds, "PORTAL_CLOUD_RETRY_BACKOFF": "1",
            "PORTAL_CLOUD_RETRY_BACKOFF_MAX": "4", "PORTAL_RECHECK_MIN": "0.5", "PORTAL_RECHECK_MAX": "3"}


def project_network_state(pid: str) -> dict:
    """What a person would find in the project's network after the launches, as counts and facts."""
    admin = connection_get()
    neutron = admin.network
    public = neutron.find_network("public", ignore_missing=False)
    networks = list(neutron.networks(project_id=pid))
    subnets = list(neutron.subnets(project_id=pid))
    routers = list(neutron.routers(project_id=pid))
    interfaces = [ip["subnet_id"] for r in routers for p in neutron.ports(device_id=r.id)
                  if p.device_owner == "network:router_interface" for ip in p.fixed_ips]
    groups = [g for g in neutron.security_groups(project_id=pid) if g.name == DEFAULT_GROUP]
    rules = Counter((r["protocol"], r.get("port_range_min")) for g in groups for r in g.security_group_rules
                    if r["direction"] == "ingress")
    return {
        "networks": sorted(n.name for n in networks),
        "subnets": sorted((next((n.name for n in networks if n.id == s.network_id), s.network_id)) for s in subnets),
        "routers": len(routers),
        "gateways on public": sum((r.external_gateway_info or {}).get("network_id") == public.id for r in routers),
        "router interfaces on the subnets": sorted(Counter(s in {x.id for x in subnets} for s in interfaces).items()),
        f"{DEFAULT_GROUP} groups": len(groups),
        f"{DEFAULT_GROUP} ingress rules": dict(rules),
    }


def expected_network_state() -> dict:
    return {"networks": ["portal-net"], "subnets": ["portal-net"], "routers": 1, "gateways on public": 1,
            "router interfaces on the subnets": [(True, 1)], f"{DEFAULT_GROUP} groups": 1,
            f"{DEFAULT_GROUP} ingress rules": {("tcp", 22): 1, ("icmp", None): 1}}


def assert_launched(row: LaunchRequest, pid: str, *, servers: int, log) -> None:
    admin = connection_get()
    assert row.state == "succeeded", f"{row.name}: {row.state} at {row.step!r}: {row.error} (worker log: {log})"
    found = list(admin.compute.servers(all_projects=True, project_id=pid))
    assert sorted(s.name for s in found) == sorted(["first", "second"][:servers]), [(s.name, s.status) for s in found]
    assert all(s.status == "ACTIVE" for s in found), [(s.name, s.status) for s in found]
    assert servers_with_public_ip(pid) == {s.id for s in found}
    assert len(list(admin.network.ips(project_id=pid))) == servers
    assert project_network_state(pid) == expected_network_state()


@pytest.mark.parametrize(("step", "method", "path"), [
    pytest.param(*step, marks=() if step[0] in IN_EVERY_RUN else pytest.mark.load, id=step[0].replace(" ", "-"))
    for step in STEPS])
def test_a_worker_killed_right_after_a_step_of_the_first_launch_leaves_a_launch_that_completes(
        step, method, path, fault_proxy, own_queues, new_project, worker_env, settings, tmp_path):
    from instances.tasks import resume_stale_launches

    pid = new_project.openstack_project_id
    log = tmp_path / "workers.log"
    first = worker_start(log, queues=own_queues.names, env=worker_env)
    try:
        # given the worker dies as soon as the cloud has done this step of the project's first launch
        kill = fault_proxy.kill_after(method, path, lambda: os.kill(first.pid, signal.SIGKILL))
        row = launch(new_project, "first", assign_floating_ip=True)
        wait_for(lambda: kill.fired.is_set() or LaunchRequest.objects.get(pk=row.pk).is_final, timeout=120,
                 interval=0.1, message=f"the launch to reach the {step} step")
        row.refresh_from_db()
        assert kill.fired.is_set(), f"the launch never made the {step} request: {row.state} {row.step!r} {row.error}"
        first.wait(timeout=10)
    finally:
        worker_stop(first)
    assert not LaunchRequest.objects.get(pk=row.pk).is_final, "the launch finished although its worker died"

    # when a new worker starts and the beat's sweep hands it the launch its predecessor dropped
    second = worker_start(log, queues=own_queues.names, env=worker_env)
    try:
        settings.PORTAL_LAUNCH_STALE_SECONDS = 0
        assert resume_stale_launches() >= 1
        row = wait_final_row(row)
        # then the launch completed with one of everything
        assert_launched(row, pid, servers=1, log=log)
        # and the project's next launch works and reuses the network, router and group
        again = wait_final_row(launch(new_project, "second", assign_floating_ip=True))
        assert_launched(again, pid, servers=2, log=log)
    finally:
        worker_stop(second)
    assert orphans(pid) == []
    print(f"\n{step}: killed after {kill.request}")


def wait_final_row(row: LaunchRequest, timeout: float = 150) -> LaunchRequest:
    wait_for(lambda: LaunchRequest.objects.get(pk=row.pk).is_final, timeout=timeout, interval=0.25,
             message=f"launch {row.name} to finish")
    return LaunchRequest.objects.get(pk=row.pk)
