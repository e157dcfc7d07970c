"""Benchmark: the instance list page (read from the mirror) vs a bare Nova listing.

Prints figures; asserts nothing about time. N servers in one project (BENCH_SERVERS, default 200)
on the devcloud, a throwaway test database, the page rendered by Django's test client.
Last line: `page/bare ratio: X`.
"""
from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
os.environ.setdefault("PORTAL_TEST_DB", "test_portal_bench")
os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/12")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_databases, setup_test_environment, teardown_databases  # noqa: E402

N = int(os.environ.get("BENCH_SERVERS", "200"))


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def boot(conn_p, name: str, count: int):
    flavor = conn_p.compute.find_flavor("m3.tiny", ignore_missing=False)
    image = conn_p.image.find_image("Featured-Ubuntu24", ignore_missing=False)
    conn_p.compute.create_server(name=name, flavor_id=flavor.id, image_id=image.id, networks="none",
                                 min_count=count, max_count=count)


def wait_active(conn_p, count: int, timeout: float = 600):
    deadline = time.time() + timeout
    while time.time() < deadline:
        servers = list(conn_p.compute.servers(details=False, status="ACTIVE"))
        if len(servers) >= count:
            return
        time.sleep(2)
    raise SystemExit(f"only {len(servers)} of {count} servers became ACTIVE")


def project_with_servers(*, user, title: str):
    """An allocation provisioned as the portal does it (the PI's and the service user's member
    roles, no admin), with N servers booted, ACTIVE and mirrored; returns (allocation, a member's
    SDK connection to its project)."""
    from instances.services import project_sync
    from tests.cloud_sdk import connection_get
    from tests.instances.integration_support import provision_directly

    allocation = provision_directly(pi=user, kind="research_cpu", title=title, sus=10**6)
    connection_get().set_compute_quotas(allocation.openstack_project_id, instances=N + 20, cores=(N + 20) * 2,
                                        ram=(N + 20) * 4096)
    conn_p = connection_get(project_id=allocation.openstack_project_id)
    print(f"booting {N} servers in project {allocation.openstack_project_name} ...", flush=True)
    for start in range(0, N, 50):
        boot(conn_p, f"bench-{start // 50}", min(50, N - start))
    wait_active(conn_p, N)
    project_sync(allocation=allocation, full=True)
    return allocation, conn_p


def main():
    from instances.services import project_sync
    from tests.factories import UserFactory
    from tests.instances.integration_support import remove_directly

    setup_test_environment()
    old = setup_databases(verbosity=0, interactive=False)
    user, allocation = UserFactory(username="bench"), None
    try:
        allocation, conn_p = project_with_servers(user=user, title="Bench")
        client = Client()
        client.force_login(user)
        url = "/instances/"
        assert client.get(url).content.decode().count('data-testid="instance-row"') == N
        page = median_time(lambda: client.get(url), 15)
        bare = median_time(lambda: list(conn_p.compute.servers(details=True)), 5)
        nochange = median_time(lambda: project_sync(allocation=allocation), 7)
        print(f"servers: {N}")
        print(f"warm list page (median of 15): {page * 1000:.1f} ms")
        print(f"bare openstacksdk servers(details=True) (median of 5): {bare * 1000:.1f} ms")
        print(f"incremental sync, nothing changed (median of 7): {nochange * 1000:.1f} ms")

        # A CLI-made server, with syncs every PORTAL_SYNC_INTERVAL seconds as the beat runs them.
        stop = threading.Event()

        def beat():
            from django.db import connection
            try:
                while not stop.wait(settings.PORTAL_SYNC_INTERVAL):
                    project_sync(allocation=allocation)
            finally:
                connection.close()
        created = time.perf_counter()
        boot(conn_p, "cli-made", 1)
        thread = threading.Thread(target=beat, daemon=True)
        thread.start()
        while "cli-made" not in client.get(url).content.decode():
            if time.perf_counter() - created > 120:
                break
            time.sleep(0.25)
        visible = time.perf_counter() - created
        stop.set()
        thread.join()
        print(f"CLI-made server visible on the page after: {visible:.1f} s "
              f"(sync interval {settings.PORTAL_SYNC_INTERVAL:.0f} s)")
        print(f"page/bare ratio: {page / bare:.3f}")
    finally:
        if allocation is not None:
            remove_directly(allocation)
        from django.db import connections
        connections.close_all()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
