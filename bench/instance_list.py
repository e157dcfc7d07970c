"""Benchmark: the instance list page, read from the mirror, in pages of PORTAL_INSTANCE_PAGE_SIZE.

Prints figures; asserts nothing about time. A throwaway test database.

1. Over HTTP, no cloud: the mirror filled directly with 200, then 1,000 servers of one project
   (BENCH_MIRROR_SIZES); gunicorn (one worker) serves the portal on a free port of 127.0.0.1 and
   a signed-in session GETs page 1, a later page and the live poll of that page's rows, one
   request after another. Per URL: median and p95 time per request, size, and the database
   queries and CPU time it takes (in this process with Django's test client, same database).
2. On the devcloud (BENCH_DEVCLOUD=0 skips it): BENCH_SERVERS servers (default 200) booted in one
   project and mirrored; page 1 (test client) against a bare Nova listing, an incremental sync,
   and how soon a server made with the CLI shows on the list. Last line: `page/bare ratio: X`.

bench/load.py and bench/api.py share `project_with_servers`, `mirror_fill` and `portal_served`.
"""
from __future__ import annotations

import math
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def django_setup() -> None:
    """Django on the test settings, a throwaway database name and Redis of the bench's own (a
    bench importing this one sets its own first)."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
    os.environ.setdefault("PORTAL_TEST_DB", "test_portal_bench")
    os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/12")
    import django

    django.setup()


django_setup()

N = int(os.environ.get("BENCH_SERVERS", "200"))
MIRROR_SIZES = [int(n) for n in os.environ.get("BENCH_MIRROR_SIZES", "200,1000").split(",")]
HTTP_RUNS = int(os.environ.get("BENCH_HTTP_RUNS", "30"))


def median_time(fn, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def percentile(values, fraction: float) -> float:
    """The nearest-rank percentile (p95 of 30 is the 29th smallest)."""
    ordered = sorted(values)
    return ordered[min(len(ordered), max(1, math.ceil(fraction * len(ordered)))) - 1]


# --- The mirror, filled directly (no cloud) ------------------------------------------------------

FLAVORS = [("m3.small", 2, 6144), ("m3.quad", 4, 15360), ("m3.medium", 8, 30720), ("r3.large", 64, 512000)]


def mirror_fill(*, allocation, count: int, start: int = 0, creators=(), prefix: str = "bench") -> list:
    """`count` servers of the allocation's project written straight into the mirror as a sync
    would (names prefix-0000.., mostly ACTIVE, some stopped or shelved, every tenth with a public
    IP, every other one made by one of `creators`), in bulk; returns the new rows' pks. The table is
    ANALYZEd after, as PostgreSQL's autovacuum does within a minute of a sync writing that many rows:
    without statistics the planner takes the mirror for empty and joins it row by row."""
    from django.db import connection
    from django.utils import timezone

    from instances.models import Instance

    now, statuses = timezone.now(), ["ACTIVE"] * 8 + ["SHUTOFF", "SHELVED_OFFLOADED"]
    rows = []
    for i in range(start, start + count):
        flavor, vcpus, ram = FLAVORS[i % len(FLAVORS)]
        host = f"{i // 250 % 250}.{i % 250 + 2}"
        addresses = [{"network": "private", "addr": f"10.{i // 62500}.{host}", "kind": "fixed"}]
        if i % 10 == 0:
            addresses.append({"network": "private", "addr": f"203.0.{host}", "kind": "floating"})
        rows.append(Instance(
            allocation=allocation, project_id=allocation.openstack_project_id, server_id=f"{prefix}-srv-{i:06d}",
            name=f"{prefix}-{i:04d}", status=statuses[i % len(statuses)], flavor_name=flavor, vcpus=vcpus,
            ram_mb=ram, disk_gb=20, image_id="img-bench-ubuntu", image_name="Featured-Ubuntu24", addresses=addresses,
            key_name="bench", security_groups=["default"],
            created_by=creators[i % len(creators)] if creators and i % 2 == 0 else None,
            cloud_user_id="" if i % 2 else "ks-bench", cloud_created_at=now - timedelta(minutes=i),
            cloud_updated_at=now - timedelta(minutes=i)))
    made = [r.pk for r in Instance.objects.bulk_create(rows, batch_size=500)]
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Instance._meta.db_table}")
    return made


# --- The portal over HTTP -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def database_url() -> str:
    """This process's (test) database, for the served portal to use as DATABASE_URL."""
    from django.db import connection

    db = connection.settings_dict
    auth = db["USER"] + (f":{db['PASSWORD']}" if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@contextmanager
def portal_served(*, workers: int, env: dict | None = None, while_starting=None):
    """gunicorn (`workers` sync workers, as `make run` serves it) on a free port of 127.0.0.1,
    on this bench's database, Redis and settings; yields the base URL and stops it after.
    `while_starting()` runs while the workers load."""
    import requests

    port, base = free_port(), ""
    with tempfile.TemporaryDirectory(prefix="bench-gunicorn-") as tmp, open(Path(tmp) / "log", "w+") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "portal.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers),
             "--timeout", "60", "--log-level", "warning"],
            cwd=ROOT, env={**os.environ, "DATABASE_URL": database_url(), **(env or {})}, stdout=log,
            stderr=subprocess.STDOUT)
        try:
            if while_starting is not None:
                while_starting()
            deadline = time.time() + 90
            while not base:
                try:
                    answer = requests.get(f"http://127.0.0.1:{port}/accounts/login/", timeout=30)
                    if answer.status_code == 200:
                        base = f"http://127.0.0.1:{port}"
                        break
                    last = f"HTTP {answer.status_code}"
                except requests.RequestException as exc:  # not listening yet, or still loading
                    last = repr(exc)
                if process.poll() is not None or time.time() > deadline:
                    log.seek(0)
                    raise SystemExit(f"gunicorn did not come up ({last}); its log:\n{log.read()[-3000:]}")
                time.sleep(0.2)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            sessions_gone()


def sessions_gone(timeout: float = 10) -> None:
    """Wait for the served portal's database sessions to end (Postgres ends them a moment after
    their processes), so that dropping the bench database does not find it in use."""
    from django.db import connection

    deadline = time.time() + timeout
    with connection.cursor() as cursor:
        while time.time() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND pid <> pg_backend_pid()")
            if not cursor.fetchone()[0]:
                return
            time.sleep(0.2)


def signed_in_session(user):
    """A requests session carrying a session cookie for `user` (made by Django's test client)."""
    import requests
    from django.conf import settings
    from django.test import Client

    client = Client()
    client.force_login(user)
    session = requests.Session()
    session.cookies.set(settings.SESSION_COOKIE_NAME, client.cookies[settings.SESSION_COOKIE_NAME].value)
    return session


def http_figures(session, client, base: str, path: str, **headers) -> str:
    """Time per request over HTTP (median, p95 of HTTP_RUNS) and the queries of one request."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first = session.get(base + path, headers=headers, allow_redirects=False)
    assert first.status_code == 200, (path, first.status_code)
    times = []
    for _ in range(HTTP_RUNS):
        start = time.perf_counter()
        session.get(base + path, headers=headers).raise_for_status()
        times.append(time.perf_counter() - start)
    with CaptureQueriesContext(connection) as queries:
        in_process = client.get(path, headers=headers)
    assert in_process.status_code == 200, (path, in_process.status_code, in_process.content[:300])
    count = len(queries)  # now: the next request empties the log
    cpu = time.process_time()
    for _ in range(10):
        client.get(path, headers=headers)
    cpu = (time.process_time() - cpu) / 10  # what the machine's other load does not change much
    return (f"median {statistics.median(times) * 1000:.1f} ms, p95 {percentile(times, 0.95) * 1000:.1f} ms, "
            f"{count} queries, {cpu * 1000:.0f} ms CPU, {len(first.content) // 1024} KiB")


def page_figures(*, user, base: str, total: int) -> None:
    import re

    from django.conf import settings
    from django.test import Client
    from django.urls import reverse

    size = settings.PORTAL_INSTANCE_PAGE_SIZE
    pages = -(-total // size)
    later = min(pages, max(2, pages * 3 // 4))  # three quarters down (page 15 of 20)
    session, client = signed_in_session(user), Client()
    client.force_login(user)
    print(f"mirror: {total:,} servers in one project; {size} rows a page, {pages} pages; over HTTP, "
          f"{HTTP_RUNS} requests each")
    for number in (1, later):
        path = f"{reverse('instances:list')}?page={number}"
        html = session.get(base + path).text
        shown = re.search(r'data-testid="page-range">([^<]+)<', html).group(1)
        assert html.count('data-testid="instance-row"') == min(size, total - (number - 1) * size), path
        print(f"  list page {number} ({shown}): {http_figures(session, client, base, path)}")
    in_view = session.get(f"{base}{reverse('instances:list')}?page={later}").text
    ids = re.findall(r'<a href="/instances/(\d+)/">', in_view)
    poll = f"{reverse('instances:rows')}?ids={','.join(ids)}"
    print(f"  poll of page {later}'s {len(ids)} rows (instances:rows): "
          f"{http_figures(session, client, base, poll, **{'HX-Request': 'true'})}")


def mirror_bench() -> None:
    """Part 1: the list page over HTTP at each size in MIRROR_SIZES, the mirror filled directly."""
    from tests.factories import UserFactory
    from tests.fixtures.allocations import make_allocation

    user = UserFactory(username="bench-mirror")
    allocation = make_allocation(pi=user, project_id="bench-mirror-project", title="Bench mirror")
    others = [UserFactory(username=f"bench-mirror-{n}") for n in range(3)]
    filled = 0
    with portal_served(workers=1) as base:
        for size in sorted(MIRROR_SIZES):
            mirror_fill(allocation=allocation, start=filled, count=size - filled, creators=[user, *others])
            filled = size
            page_figures(user=user, base=base, total=size)


# --- On the devcloud --------------------------------------------------------------------------------


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


def devcloud_bench() -> None:
    """Part 2: page 1 against a bare Nova listing, a sync, and a CLI-made server's way to the list."""
    from django.conf import settings
    from django.test import Client

    from instances.services import project_sync
    from tests.factories import UserFactory
    from tests.instances.integration_support import remove_directly

    user, allocation = UserFactory(username="bench"), None
    try:
        allocation, conn_p = project_with_servers(user=user, title="Bench")
        client = Client()
        client.force_login(user)
        url = "/instances/"
        assert f" of {N:,}</span>" in client.get(url).content.decode()
        page = median_time(lambda: client.get(url), 15)
        bare = median_time(lambda: list(conn_p.compute.servers(details=True)), 5)
        nochange = median_time(lambda: project_sync(allocation=allocation), 7)
        print(f"devcloud: {N} servers")
        print(f"warm list page 1 (median of 15, test client): {page * 1000:.1f} ms")
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
        while ">cli-made</a>" not in client.get(url, {"q": "cli-made"}).content.decode():  # its row, searched for
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


def main():
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases

    setup_test_environment()
    old = setup_databases(verbosity=0, interactive=False, serialized_aliases=set())
    try:
        mirror_bench()
        if os.environ.get("BENCH_DEVCLOUD", "1") != "0":
            devcloud_bench()
    finally:
        from django.db import connections
        connections.close_all()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
