"""Two regions against the real local cloud (issue 13): RegionOne and RegionTwo (devcloud `up
--regions 2`), one Keystone.

An allocation lives on the primary; an admin enables RegionTwo for it, which sets its quotas there.
The PI launches one server in each region from the launch page; each launch runs on its region's
own Celery queue (RegionTwo's taken by a worker of its own). The instance list shows both with their
region, and filters by region; one meter run charges both to the allocation's one balance. Then
RegionTwo's Nova stops: the primary's pages keep working, and RegionTwo's rows are flagged.
"""
from __future__ import annotations

import html
import os
import re
import signal
import time
import uuid
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from allocations.metering import allocations_meter
from allocations.models import AllocationRegion, Cloud, LedgerEntry, LedgerKind
from allocations.regions import region_enable, regions_refresh
from instances.models import CloudAction, Instance, LaunchRequest, Volume
from instances.services import project_sync
from instances.tasks import sync_project
from portal.cloud.errors import CloudError
from tests.cloud_sdk import connection_get
from tests.fixtures.celery_worker import wait_for
from tests.fixtures.cloud_worker import worker_start, worker_stop
from tests.instances.integration_support import act, provision_directly, remove_directly, wait_final
from tests.integration.conftest import REGION2, REGION2_NOVA_PORT, _listening, cleanup_project

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
R2_NOVA_PID = os.path.join(ROOT, "var", "devcloud", "run", "r2-nova-api.pid")


@pytest.fixture
def region_worker(settings, tmp_path):
    """A Celery worker for RegionTwo's own queues only (names unique to this test)."""
    prefix = f"t{uuid.uuid4().hex[:6]}-"
    settings.PORTAL_REGION_QUEUE_PREFIX = prefix
    queues = [f"cloud.{prefix}{REGION2}", f"sync.{prefix}{REGION2}"]
    log = tmp_path / "region-worker.log"
    worker = worker_start(log, queues=queues, env={"PORTAL_REGION_QUEUE_PREFIX": prefix}, concurrency=2)
    yield queues, log
    worker_stop(worker)


@pytest.fixture
def two_region_allocation(region_two, celery_worker_process, transactional_db):
    """A research allocation provisioned for real on the primary; RegionTwo not enabled yet."""
    from tests.factories import UserFactory

    allocation = provision_directly(pi=UserFactory(), kind="research_cpu", title="Two regions")
    yield allocation
    problems = cleanup_project(region_two, allocation.openstack_project_id)
    assert not problems, problems
    remove_directly(allocation)


def text(response) -> str:
    return html.unescape(response.content.decode())


def region_cells(body: str) -> dict[str, str]:
    """Instance name -> its region cell, as the list shows them."""
    rows = re.findall(r'data-testid="instance-row".*?</tr>', body, re.S)
    found = {}
    for row in rows:
        name = re.search(r'<a href="/instances/\d+/">([^<]+)</a>', row).group(1)
        cell = re.search(r'data-testid="region">(.*?)</td>', row, re.S).group(1)
        found[name] = " ".join(re.sub(r"<[^>]+>", " ", cell).split())
    return found


def launch(client, allocation, conn, *, region: str, name: str) -> LaunchRequest:
    """Post the launch page's form in `region` ("" the primary) with that region's m3.tiny and image."""
    flavor = conn.compute.find_flavor("m3.tiny", ignore_missing=False)
    image = conn.image.find_image("Featured-Ubuntu24", ignore_missing=False)
    url = f"{reverse('instances:launch')}?project={allocation.pk}&region={region}"
    page = text(client.get(url))
    assert f'value="{image.id}"' in page and f'value="{flavor.id}"' in page, "the form offers the region's own"
    before = set(LaunchRequest.objects.values_list("pk", flat=True))
    response = client.post(url, {"project": allocation.pk, "region": region, "name": name, "image": image.id,
                                 "flavor": flavor.id, "count": 1})
    assert response.status_code == 302, text(response)[-3000:]
    return LaunchRequest.objects.exclude(pk__in=before).get()


def stop_region_two_nova() -> None:
    with open(R2_NOVA_PID) as f:
        pid = int(f.read().strip())
    os.killpg(os.getpgid(pid), signal.SIGTERM)
    wait_for(lambda: not _listening(REGION2_NOVA_PORT), timeout=30, message="RegionTwo's nova-api to stop")


def test_one_allocation_runs_servers_in_two_regions_on_one_balance(client, two_region_allocation, region_two,
                                                                    region_worker, devcloud):
    allocation, pid = two_region_allocation, two_region_allocation.openstack_project_id
    queues, worker_log = region_worker
    # the portal learns the regions from Keystone's catalog
    assert {c.region_name for c in regions_refresh()} >= {"RegionOne", REGION2}
    assert Cloud.objects.get(region_name="RegionOne").is_primary

    # an admin enables RegionTwo for the allocation, with quotas there: the task sets them in RegionTwo's Nova
    row = AllocationRegion.objects.create(allocation=allocation, region_name=REGION2, cores=8, ram_gb=30,
                                          instances=4, volume_gb=100, floating_ips=1)
    region_enable(row=row)
    wait_for(lambda: AllocationRegion.objects.get(pk=row.pk).state == "ready", timeout=90,
             message="RegionTwo to be set up for the allocation")
    quota = region_two.compute.get_quota_set(pid)
    assert (quota.cores, quota.instances) == (8, 4)
    assert connection_get().compute.get_quota_set(pid).cores == 150, "the primary's quota is its own"

    # the PI launches one server in each region from the launch page, which offers both
    client.force_login(allocation.pi)
    page = text(client.get(f"{reverse('instances:launch')}?project={allocation.pk}"))
    assert 'data-testid="region-picker"' in page and f'<option value="{REGION2}"' in page
    here = launch(client, allocation, connection_get(project_id=pid), region="", name="east")
    there = launch(client, allocation, region_two, region=REGION2, name="west")
    here, there = wait_final(here, 240), wait_final(there, 240)
    assert (here.state, there.state) == ("succeeded", "succeeded"), (here.error, there.error)
    # RegionTwo's launch ran on RegionTwo's own queue, in the region worker
    assert there.celery_task_id in worker_log.read_text() and here.celery_task_id not in worker_log.read_text()
    member_r2 = [s.name for s in region_two.compute.servers(all_projects=True, project_id=pid)]
    member_r1 = [s.name for s in connection_get().compute.servers(all_projects=True, project_id=pid)]
    assert (member_r1, member_r2) == (["east"], ["west"])

    # the list shows both with their region, and filters by region
    body = text(client.get(reverse("instances:list")))
    assert region_cells(body) == {"east": "RegionOne", "west": REGION2}
    only_two = text(client.get(f"{reverse('instances:list')}?region={REGION2}"))
    assert list(region_cells(only_two)) == ["west"]
    west = Instance.objects.get(name="west")
    assert REGION2 in text(client.get(reverse("instances:detail", args=[west.pk])))

    # one meter run charges both, an hour each, to the one balance
    balance_before = allocation.balance()
    allocations_meter(now=timezone.now() + timedelta(hours=1))
    by_server = defaultdict(Decimal)
    for entry in LedgerEntry.objects.filter(allocation=allocation, kind=LedgerKind.USAGE):
        by_server[entry.resource_id] += entry.sus
    servers = {i.name: i.server_id for i in Instance.objects.filter(allocation=allocation)}
    assert set(by_server) == {servers["east"], servers["west"]}
    # an m3.tiny is 1 SU an hour: each charged from its creation (a minute or less ago) to an hour from now
    assert all(Decimal("-1.05") < sus <= Decimal(-1) for sus in by_server.values()), by_server
    assert allocation.balance() == balance_before + sum(by_server.values())

    # an action on RegionTwo's server, and a new volume there, go to RegionTwo, as the PI
    stopped = act(client, west, "stop", timeout=120)
    assert stopped.state == "succeeded", stopped.error
    wait_for(lambda: region_two.compute.get_server(west.server_id).status == "SHUTOFF", timeout=60,
             message="west to be SHUTOFF in RegionTwo")
    assert connection_get().compute.get_server(servers["east"]).status == "ACTIVE"
    created = client.post(f"{reverse('instances:volume_create')}?project={allocation.pk}&region={REGION2}",
                          {"project": allocation.pk, "region": REGION2, "name": "west-data", "size_gb": 1})
    assert created.status_code == 302, text(created)[-2000:]
    made = wait_final(CloudAction.objects.filter(target_type="volume", action="create").latest("pk"), 120)
    assert made.state == "succeeded", made.error
    assert [v.name for v in region_two.block_storage.volumes(all_projects=True, project_id=pid)] == ["west-data"]
    assert not list(connection_get().block_storage.volumes(all_projects=True, project_id=pid))
    assert Volume.objects.get(name="west-data").region == REGION2
    # a public IP allocated on the Public IPs page with RegionTwo picked is RegionTwo's, and listed there only
    page = f"{reverse('instances:floating_ips')}?project={allocation.pk}&region={REGION2}"
    allocated = client.post(page, {"project": allocation.pk, "region": REGION2})
    assert allocated.status_code == 302 and allocated.url.endswith(f"&region={REGION2}"), text(allocated)[-2000:]
    in_two = [ip.floating_ip_address for ip in region_two.network.ips(project_id=pid)]
    assert len(in_two) == 1 and not list(connection_get().network.ips(project_id=pid))
    assert in_two[0] in text(client.get(page))
    assert in_two[0] not in text(client.get(f"{reverse('instances:floating_ips')}?project={allocation.pk}"))

    # RegionTwo's Nova stops: its sync fails, the primary's pages keep working, RegionTwo's rows are flagged
    stop_region_two_nova()
    try:
        with pytest.raises(CloudError):
            project_sync(allocation=allocation, region=REGION2)
        sync_project(allocation.pk)  # the primary's sync is unaffected
        assert Cloud.objects.get(region_name=REGION2).failing_since is not None
        assert Cloud.objects.get(region_name="RegionOne").failing_since is None
        from django.core.cache import cache
        cache.delete("instances:regions")
        started = time.monotonic()
        listed = client.get(reverse("instances:list"))
        assert listed.status_code == 200 and time.monotonic() - started < 5
        body = text(listed)
        assert f"The region {REGION2} has not answered" in body
        rows = dict(re.findall(r'data-testid="instance-row" data-server-id="([^"]+)"( class="table-warning")?', body))
        assert rows == {servers["east"]: "", servers["west"]: ' class="table-warning"'}
        assert region_cells(body) == {"east": "RegionOne", "west": f"{REGION2} not answering"}
        # the primary's launch page still serves its form
        assert 'name="flavor"' in text(client.get(f"{reverse('instances:launch')}?project={allocation.pk}"))
    finally:
        r = devcloud.run("restart", "r2-nova-api", timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
    # back: the next sync clears the flag
    project_sync(allocation=allocation, region=REGION2)
    assert Cloud.objects.get(region_name=REGION2).failing_since is None
