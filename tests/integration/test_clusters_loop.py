"""The elastic loop, for real (issue 10): a real slurmctld with the slurm.conf and resume/suspend
programs the portal rendered for a cluster, calling the live test server; the portal makes and
deletes the workers' servers in the local cloud through a real Celery worker, and the harness plays
each server's boot with a local slurmd (tests/clusters/slurm_local.py says how and why).

sbatch → resume → the portal creates the server → job COMPLETED → idle → suspend → server deleted
in Nova → node powered down again; the ledger holds the worker's charge. An allocation that cannot
carry a worker refuses the resume: the node goes DOWN with the portal's reason and no server is
made. Deleting the cluster leaves nothing in the project. (`make test`, about 2 minutes.)

`make test-load` also runs the rest: two jobs at once scale to two workers; a refused node returns
to service once the allocation has SUs again, and its job runs; raised max workers reach Slurm.
"""
from __future__ import annotations

import os
import shutil
import time
from decimal import Decimal

import pytest
from django.utils import timezone

from allocations.metering import allocation_meter
from allocations.models import LedgerEntry
from clusters import services
from clusters.models import Cluster, ClusterNode, ClusterState, NodeState
from instances.models import LaunchRequest
from tests.clusters.slurm_local import LocalSlurm
from tests.fixtures.celery_worker import wait_for
from tests.instances.integration_support import instances_allocation, nova_servers
from tests.integration.test_clusters import create_cluster

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True),
              pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("slurmctld"),
                                 reason="needs root and Debian's slurm-wlm (scripts/ensure-slurm.sh)")]
__all__ = ["instances_allocation"]


def node(cluster, name) -> ClusterNode:
    return ClusterNode.objects.get(cluster=cluster, name=name)


def servers_of(project_id: str, prefix: str) -> list:
    return [s for s in nova_servers(project_id) if s.name.startswith(prefix)]


@pytest.fixture
def slurm(live_server, instances_allocation, celery_worker_process, settings):
    settings.PORTAL_CLUSTER_RESUME_TIMEOUT = 180
    settings.PORTAL_CLUSTER_SUSPEND_TIMEOUT = 15  # a powering-down node is "idle%" this long
    cluster = create_cluster(instances_allocation, name="loop", max_workers=2)
    wait_for(lambda: node(cluster, "head").state == NodeState.ACTIVE, timeout=240, message="the head ACTIVE")
    cluster.refresh_from_db()
    local = LocalSlurm(cluster, token=cluster.head_token, portal_url=live_server.url, suspend_seconds=20)
    local.start()
    yield local
    local.stop()
    if os.environ.get("KEEP_SLURM_LOGS"):
        print(local.logs())
    local.cleanup()


def wait_job(slurm: LocalSlurm, job: str, timeout: float = 240) -> None:
    try:
        wait_for(lambda: slurm.job_state(job) in ("COMPLETED", "FAILED", "CANCELLED", "NODE_FAIL", "TIMEOUT"),
                 timeout=timeout, interval=1, message=f"job {job} to end")
        assert slurm.job_state(job) == "COMPLETED"
    except BaseException:
        print(slurm.logs(), slurm.run("scontrol", "show", "job", job, check=False), slurm.run("sinfo", "-N"),
              list(ClusterNode.objects.filter(cluster=slurm.cluster).values_list("name", "state", "reason")),
              list(slurm.cluster.events.values_list("kind", "node_name", "reason")))
        raise


def refuse_a_resume(slurm: LocalSlurm, allocation) -> tuple[str, int]:
    """Drain the allocation to 5 SUs and submit a job: its resume is refused, a node goes DOWN with
    the portal's reason, no server is made. Returns the waiting job and the launches made before."""
    pid, cluster = allocation.openstack_project_id, slurm.cluster
    before = LaunchRequest.objects.filter(name__startswith="loop-w").count()
    LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=-(allocation.balance() - Decimal(5)),
                               note="test: drained")
    refused_job = slurm.sbatch("-N1", "--wrap", "hostname")
    wait_for(lambda: any(slurm.node_state(n)[0].startswith("down") and "Not enough SUs" in slurm.node_state(n)[1]
                         for n in ("w1", "w2")), timeout=120, interval=1, message="a node DOWN with the reason")
    assert LaunchRequest.objects.filter(name__startswith="loop-w").count() == before
    assert not servers_of(pid, "loop-w")
    assert any(n.state == NodeState.REFUSED or "Not enough SUs" in n.reason for n in cluster.nodes.all())
    return refused_job, before


def test_the_elastic_loop(slurm, instances_allocation):
    allocation, pid, cluster = instances_allocation, instances_allocation.openstack_project_id, slurm.cluster

    # one job: Slurm resumes a worker, the portal makes its server, the job runs to COMPLETED
    start = time.monotonic()
    job = slurm.sbatch("-N1", "--wrap", "hostname")
    wait_job(slurm, job)
    completed = time.monotonic() - start
    [launch] = LaunchRequest.objects.filter(name__startswith="loop-w")
    name = launch.name.removeprefix("loop-")
    server_id = node(cluster, name).server_id
    assert server_id and len(servers_of(pid, "loop-w")) == 1
    # the head's report (its timer's program, run once) reaches the cluster page's data
    slurm.run(str(slurm.folder / "portal-report"))
    cluster.refresh_from_db()
    assert cluster.reported_at and {n["name"] for n in cluster.report["nodes"]} == {"w1", "w2"}
    assert node(cluster, name).slurm_state

    # idle: Slurm suspends it, the portal deletes the server, the node is powered down again
    idle = time.monotonic()
    wait_for(lambda: node(cluster, name).state == NodeState.POWERED_DOWN, timeout=180, interval=1,
             message=f"{name} powered down by the portal")
    wait_for(lambda: not servers_of(pid, f"loop-{name}"), timeout=120, message=f"loop-{name} gone from Nova")
    deleted = time.monotonic() - idle
    wait_for(lambda: slurm.node_state(name)[0] == "idle~", timeout=60, message=f"{name} idle~ in Slurm")
    print(f"\nsubmit→COMPLETED {completed:.1f} s, idle→deleted {deleted:.1f} s (SuspendTime 20 s)")
    # and the ledger holds the worker's charge
    allocation_meter(allocation=allocation, now=timezone.now())
    assert LedgerEntry.objects.filter(allocation=allocation, resource_id=server_id, kind="usage").exists()

    # an allocation that cannot carry a worker: the resume is refused, the node goes DOWN with the reason
    refused_job, before = refuse_a_resume(slurm, allocation)
    slurm.run("scancel", refused_job)

    # deleting the cluster leaves nothing in the project
    services.cluster_delete(user=allocation.pi, cluster=cluster)
    wait_for(lambda: Cluster.objects.get(pk=cluster.pk).state == ClusterState.DELETED, timeout=240,
             message="the cluster deleted")
    wait_for(lambda: not servers_of(pid, "loop-"), timeout=120, message="nothing of the cluster in Nova")


@pytest.mark.load
def test_the_loop_scales_out_and_returns_refused_nodes_to_service(slurm, instances_allocation):
    """make test-load: two workers at once; a refused node back in service once the allocation has
    SUs again, its job run on a new worker; max workers raised while the cluster runs."""
    allocation, pid, cluster = instances_allocation, instances_allocation.openstack_project_id, slurm.cluster

    # two jobs at once scale to two workers
    jobs = [slurm.sbatch("-N1", "--exclusive", "--wrap", "sleep 3") for _ in range(2)]
    for j in jobs:
        wait_job(slurm, j)
    made = set(LaunchRequest.objects.filter(name__startswith="loop-w").values_list("name", flat=True))
    assert made == {"loop-w1", "loop-w2"}
    wait_for(lambda: all(n.state == NodeState.POWERED_DOWN for n in cluster.nodes.filter(role="worker")),
             timeout=180, interval=1, message="both workers powered down")
    wait_for(lambda: not servers_of(pid, "loop-w"), timeout=120, message="no worker left in Nova")

    # an allocation that cannot carry a worker: the resume is refused, the node goes DOWN with the reason
    refused_job, before = refuse_a_resume(slurm, allocation)
    # the head's reports leave it DOWN while the allocation still cannot carry a worker
    slurm.run(str(slurm.folder / "portal-report"))
    assert any(slurm.node_state(n)[0].startswith("down") for n in ("w1", "w2"))

    # when the allocation gets SUs again, the head's next report returns the node to service and the
    # waiting job runs on a new worker
    LedgerEntry.objects.filter(allocation=allocation, note="test: drained").delete()
    slurm.run(str(slurm.folder / "portal-report"))
    wait_for(lambda: not any(slurm.node_state(n)[0].startswith("down") for n in ("w1", "w2")), timeout=30,
             interval=1, message="the refused nodes back in service")
    wait_job(slurm, refused_job)
    assert LaunchRequest.objects.filter(name__startswith="loop-w").count() == before + 1

    # raising max workers on the portal reaches Slurm's partition at the head's next report
    services.cluster_set_max_workers(user=allocation.pi, cluster=cluster, max_workers=3)
    slurm.run(str(slurm.folder / "portal-report"))
    assert " Nodes=w[1-3] " in slurm.run("scontrol", "show", "partition", "batch", "-o")

    # deleting the cluster leaves nothing in the project
    services.cluster_delete(user=allocation.pi, cluster=cluster)
    wait_for(lambda: Cluster.objects.get(pk=cluster.pk).state == ClusterState.DELETED, timeout=240,
             message="the cluster deleted")
    wait_for(lambda: not servers_of(pid, "loop-"), timeout=120, message="nothing of the cluster in Nova")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@pytest.mark.skipif(not os.environ.get("BENCH_CLUSTER_LOOPS"), reason="bench/cluster_loop.py runs it")
@pytest.mark.load
def test_loop_timings(slurm, instances_allocation):
    """bench/cluster_loop.py: N one-worker loops; submit→COMPLETED, idle→deleted, and the portal's
    own time per resume (request in, when its scale-out event is written, to the server requested:
    the launch row holding Nova's server id, sampled every 20 ms)."""
    import threading

    from clusters.models import ClusterEvent

    pid, cluster = instances_allocation.openstack_project_id, slurm.cluster
    requested: dict[int, float] = {}  # launch pk -> wall time its server id was first seen
    stop = threading.Event()

    def sample():
        from django.db import connection
        try:
            while not stop.is_set():
                for pk, ids in LaunchRequest.objects.filter(name__startswith="loop-w").values_list("pk", "server_ids"):
                    if ids and pk not in requested:
                        requested[pk] = time.time()
                stop.wait(0.02)
        finally:
            connection.close()

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    completed, deleted = [], []
    for _ in range(int(os.environ["BENCH_CLUSTER_LOOPS"])):
        start = time.monotonic()
        wait_job(slurm, slurm.sbatch("-N1", "--wrap", "hostname"))
        completed.append(time.monotonic() - start)
        idle = time.monotonic()
        wait_for(lambda: not servers_of(pid, "loop-w") and all(
            n.state == NodeState.POWERED_DOWN for n in cluster.nodes.filter(role="worker")), timeout=180, interval=0.5,
            message="the worker deleted")
        deleted.append(time.monotonic() - idle)
        wait_for(lambda: all(slurm.node_state(n)[0] == "idle~" for n in ("w1", "w2")), timeout=60,
                 message="nodes idle~")
    stop.set()
    sampler.join(timeout=5)
    events = ClusterEvent.objects.filter(cluster=cluster, kind="scale_out").order_by("created_at")
    launches = LaunchRequest.objects.filter(name__startswith="loop-w").order_by("created_at")
    posts = nova_server_creates()
    overhead, nova, portal = [], [], []
    for event, launch in zip(events, launches, strict=False):
        if launch.pk not in requested:
            continue
        asked, answered = event.created_at.timestamp(), requested[launch.pk]
        overhead.append(answered - asked)
        # Nova's own time for this create: its POST answered between the request and the id seen
        took = [t for done, t in posts if asked <= done <= answered + 0.05]
        if took:
            nova.append(took[-1])
            portal.append(answered - asked - took[-1])
    for label, values in (("submit→COMPLETED", completed), ("idle→deleted", deleted),
                          ("resume: request in → Nova answered the server's create", overhead),
                          ("  of which Nova's own POST /servers (nova-api request log)", nova),
                          ("  the portal's own part (the rest)", portal)):
        if values:
            print(f"{label}: p50 {_percentile(values, 0.5):.2f} s, p95 {_percentile(values, 0.95):.2f} s, "
                  f"n={len(values)}")


def nova_server_creates() -> list[tuple[float, float]]:
    """(when it answered, seconds it took) of each POST /v2.1/servers in the devcloud's nova-api log."""
    import re
    from datetime import datetime
    from pathlib import Path

    from django.conf import settings

    log = Path(settings.OS_CLIENT_CONFIG_FILE).parent / "log" / "nova-api.log"
    found = []
    pattern = re.compile(r'^(\S+ \S+) .*"POST /v2\.1/servers" status: 202 .*time: ([\d.]+)')
    for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
        if match := pattern.match(line):
            done = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
            found.append((done, float(match.group(2))))
    return found
