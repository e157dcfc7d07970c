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
import uuid
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


def make_project(conn):
    project = conn.identity.create_project(name=f"bench-{uuid.uuid4().hex[:8]}", domain_id="default")
    admin_user = conn.identity.find_user("admin", domain_id="default")
    for role in ("admin", "member"):
        conn.identity.assign_project_role_to_user(project, admin_user, conn.identity.find_role(role))
    conn.set_compute_quotas(project.id, instances=N + 20, cores=(N + 20) * 2, ram=(N + 20) * 4096)
    return project


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


def main():
    from allocations.models import Allocation, LedgerEntry, Membership
    from instances.services import project_sync
    from portal.cloud.connection import connection_get
    from tests.factories import UserFactory

    setup_test_environment()
    old = setup_databases(verbosity=0, interactive=False)
    admin = connection_get()
    project = make_project(admin)
    try:
        conn_p = connection_get(project_id=project.id)
        print(f"booting {N} servers in project {project.name} ...", flush=True)
        for start in range(0, N, 50):
            boot(conn_p, f"bench-{start // 50}", min(50, N - start))
        wait_active(conn_p, N)
        user = UserFactory(username="bench")
        from datetime import date, timedelta
        allocation = Allocation.objects.create(
            title="Bench", pi=user, kind="research_cpu", justification="bench", requested_sus=10**6,
            awarded_sus=10**6, start_date=date.today(), end_date=date.today() + timedelta(days=30), status="active",
            openstack_project_id=project.id)
        Membership.objects.create(allocation=allocation, user=user, role="pi")
        LedgerEntry.objects.create(allocation=allocation, kind="award", sus=10**6)
        project_sync(allocation=allocation, full=True)
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
        from portal.cloud import usage
        usage.project_resources_delete(project_id=project.id)
        admin.identity.delete_project(project)
        from django.db import connections
        connections.close_all()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
