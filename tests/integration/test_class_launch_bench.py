"""Benchmark (bench/class_launch.py, marker `load`): a class of BENCH_CLASS_SEATS seats (default 50)
launched through the portal (four worker processes on the cloud queue, as `make run`'s) against a
hand-written concurrent openstacksdk script making the same servers: each with its own student's
user data, on the project's network, with a public IP. Prints both times, `class/sdk ratio: X`
(target ≤ 1.2) and seats per minute."""
from __future__ import annotations

import datetime
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from classes import rendering, selectors, services
from classes.models import ClassTemplate, Seat
from instances.models import LaunchRequest
from instances.services.launch import PORTAL_NETWORK
from tests.cloud_sdk import connection_get
from tests.factories import UserFactory
from tests.fixtures.celery_worker import wait_for
from tests.instances.integration_support import provision_directly, remove_directly
from tests.integration.test_saturation import delete_all_and_wait, own_queues  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.load, pytest.mark.django_db(transaction=True)]

SEATS = int(os.environ.get("BENCH_CLASS_SEATS", "50"))
SDK_THREADS = int(os.environ.get("BENCH_CLASS_SDK_THREADS", "8"))


@pytest.fixture
def bench_allocation(devcloud, transactional_db):
    from classes.seeds import templates_seed

    templates_seed()
    allocation = provision_directly(pi=UserFactory(), kind="research_cpu", title="Class bench", sus=1_000_000)
    admin = connection_get()
    admin.set_compute_quotas(allocation.openstack_project_id, instances=SEATS + 10, cores=4 * SEATS + 20,
                             ram=1024 * 1024 * 2)
    admin.set_network_quotas(allocation.openstack_project_id, floatingip=SEATS + 10)
    yield allocation
    remove_directly(allocation)


def sdk_class(pid: str, image_id: str, flavor_id: str, user_data: list[tuple[str, str]]) -> float:
    """What a careful admin would script: every server created at once (a thread pool), each waited
    for, then given a public IP. Returns the seconds until the last one has its IP."""
    import base64

    conn = connection_get(project_id=pid)
    network = conn.network.find_network(PORTAL_NETWORK, ignore_missing=False)
    public = next(n for n in conn.network.networks(is_router_external=True))

    def one(seat):
        name, data = seat
        server = conn.compute.create_server(name=name, flavor_id=flavor_id, image_id=image_id,
                                            networks=[{"uuid": network.id}],
                                            user_data=base64.b64encode(data.encode()).decode())
        server = conn.compute.wait_for_server(server, status="ACTIVE", interval=1, wait=600)
        port = next(conn.network.ports(device_id=server.id))
        conn.network.create_ip(floating_network_id=public.id, port_id=port.id)

    started = time.monotonic()
    with ThreadPoolExecutor(SDK_THREADS) as pool:
        list(pool.map(one, user_data))
    return time.monotonic() - started


def test_a_class_launches_about_as_fast_as_a_hand_written_sdk_script(bench_allocation, own_queues,
                                                                       celery_worker_factory):
    allocation, pi = bench_allocation, bench_allocation.pi
    pid = allocation.openstack_project_id
    admin = connection_get()
    celery_worker_factory("cloud", queues=[own_queues["cloud"]], concurrency=4, env=own_queues["env"])
    celery_worker_factory("sync", queues=[own_queues["sync"], own_queues["default"]], concurrency=2,
                          env=own_queues["env"])
    today = datetime.date.today()
    course = services.course_create(
        user=pi, allocation=allocation, template=ClassTemplate.objects.get(name="Ubuntu 24.04"), name="bench",
        title="Bench", starts_on=today, ends_on=today + datetime.timedelta(days=30),
        roster="\n".join(f"student{i:03d}@uni.example" for i in range(SEATS)))

    # the portal: Launch all, until every seat is ready (ACTIVE, with its public IP)
    started = time.monotonic()
    services.course_launch(user=pi, course=course)
    asked = time.monotonic() - started
    wait_for(lambda: all(s.shown_state == "ready" for s in selectors.course_page(course=course, flavor_vcpus=None)
                         ["seats"]), timeout=1200, interval=1, message=f"{SEATS} seats ready")
    portal_seconds = time.monotonic() - started
    failed = [s.username for s in selectors.course_page(course=course, flavor_vcpus=None)["seats"]
              if s.shown_state != "ready"]
    assert not failed
    servers = [s for s in admin.compute.servers(all_projects=True, project_id=pid) if s.name.startswith("bench-")]
    assert len(servers) == SEATS and {s.status for s in servers} == {"ACTIVE"}
    # where the time went: Nova's builds, or the portal's own steps after them (public IP, mirror)
    launches = {r.server_ids[0]: r for r in LaunchRequest.objects.filter(name__startswith="bench-")}
    wall = datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=time.monotonic() - started)
    active_at = {s.id: datetime.datetime.fromisoformat(s.launched_at).replace(tzinfo=datetime.UTC) for s in servers}
    after = sorted((launches[i].finished_at - at).total_seconds() for i, at in active_at.items())
    print(f"class launch: Nova had every seat ACTIVE {(max(active_at.values()) - wall).total_seconds():.0f} s after "
          f"Launch all; a seat was ready after its server went ACTIVE in: median {after[len(after) // 2]:.0f} s, "
          f"max {after[-1]:.0f} s")
    deleted_in = delete_all_and_wait(admin, pid, timeout=600)
    for fip in admin.network.ips(project_id=pid):
        admin.network.delete_ip(fip)

    # the script: the same servers (names, flavor, image, each student's user data), on the same network
    template = course.template
    image = admin.image.find_image(template.image_name, ignore_missing=False)
    flavor = admin.compute.find_flavor(template.flavor_name, ignore_missing=False)
    seats = list(Seat.objects.filter(course=course).order_by("username"))
    data = [(f"sdk-{s.username}", rendering.seat_user_data(course, s, ssh_keys=[], password=rendering.password_new()))
            for s in seats]
    sdk_seconds = sdk_class(pid, image.id, flavor.id, data)
    sdk_servers = [s for s in admin.compute.servers(all_projects=True, project_id=pid) if s.name.startswith("sdk-")]
    assert len(sdk_servers) == SEATS
    delete_all_and_wait(admin, pid, timeout=600)

    ratio = portal_seconds / sdk_seconds
    print(f"class launch: {SEATS} seats through the portal in {portal_seconds:.1f} s (Launch all answered in "
          f"{asked:.1f} s; 4 worker processes), {SEATS / portal_seconds * 60:.0f} seats per minute")
    print(f"class launch: the same {SEATS} servers by an openstacksdk script ({SDK_THREADS} threads) in "
          f"{sdk_seconds:.1f} s, {SEATS / sdk_seconds * 60:.0f} per minute; the portal's servers deleted in "
          f"{deleted_in:.0f} s")
    print(f"class/sdk ratio: {ratio:.2f} (target <= 1.2)")
