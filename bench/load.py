"""Benchmark: 50 people browsing the portal at once, with 1,000 servers in the mirror.

Headless and bounded: locust (BENCH_LOAD_USERS users, default 50, started BENCH_LOAD_RATE a second,
for BENCH_LOAD_TIME, default 30s) against gunicorn (BENCH_LOAD_WORKERS sync workers, default 3 as
`make run` has) on a free port of 127.0.0.1. A throwaway test database holds 1,000 servers in two
projects (the mirror filled directly, as bench/instance_list.py does) and the users, members of
both. Each user first signs in on the login page, before the measured run (five at a time, each
from an address of its own in 127.0.0.0/8, as the login rate limit is per address); then each
browses, 1 to 3 s apart: the dashboard, the instance list (page 1, later pages, filtered and
sorted pages, the live poll of a page's rows), instance pages, and the allocation list and pages.
Prints p50/p95/max and errors per page and overall, and whether the target (p95 < 150 ms and 0
errors) is met. Asserts nothing.

No cloud calls. Pages that read the cloud, and what this bench does about them:
- dashboard: each project's instance, volume and public IP quotas (compute, block storage,
  network; cached 5 minutes per project; a failure is not cached);
- instance page: the image's login user (Glance, cached a day per image) and the flavors offered
  for a resize (Nova, cached 5 minutes per person and project);
  both are served from the cache, which the bench fills first through the same selectors with the
  gateway faked. The count of gateway calls the served portal made is read from its /metrics.
- allocation page: its quota panel (allocations:quota, fetched by htmx after the page) reads the
  cloud on every view, uncached; the bench requests the page only, not the panel.
The list pages and their poll and the allocation list read only the database.

Run as `python bench/load.py`; locust loads this same file as its locustfile (then only the
user class below is defined).
"""
from __future__ import annotations

import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

USERS = int(os.environ.get("BENCH_LOAD_USERS", "50"))
RATE = int(os.environ.get("BENCH_LOAD_RATE", "10"))
RUN_TIME = os.environ.get("BENCH_LOAD_TIME", "30s")
WORKERS = int(os.environ.get("BENCH_LOAD_WORKERS", "3"))
SERVERS, PROJECTS = 1000, 2
TARGET_P95_MS = 150
SIGN_IN = "sign in (before the run)"
PAGES = ["dashboard", "instance list, page 1", "instance list, later page", "instance list, filtered",
         "instance list poll (rows)", "instance detail", "allocation list", "allocation detail"]


if __name__ != "__main__":  # locust's locustfile: one simulated researcher
    import itertools
    import random

    from locust import HttpUser, between, events, task

    SPEC = json.loads(os.environ["BENCH_LOAD_SPEC"])
    SAMPLES: list = []
    numbers = itertools.count()

    @events.request.add_listener
    def record(name, response_time, exception, **kwargs):
        SAMPLES.append((name, response_time, exception is not None))

    @events.quitting.add_listener
    def write_samples(**kwargs):
        Path(SPEC["samples"]).write_text(json.dumps(SAMPLES))

    class Researcher(HttpUser):
        wait_time = between(1, 3)

        def on_start(self):  # signed in before the run, on the login page (see sign_in_everyone)
            self.client.cookies.set(SPEC["cookie"], SPEC["sessions"][next(numbers) % len(SPEC["sessions"])])

        def page(self, name: str, path: str, **headers):
            with self.client.get(path, name=name, headers=headers, allow_redirects=False,
                                 catch_response=True) as response:
                if response.status_code != 200:  # a redirect to the login page counts as an error too
                    response.failure(f"{response.status_code} {response.headers.get('Location', '')}")

        @task(2)
        def dashboard(self):
            self.page("dashboard", "/")

        @task(2)
        def list_first(self):
            self.page("instance list, page 1", "/instances/")

        @task(3)
        def list_later(self):
            self.page("instance list, later page", f"/instances/?page={random.randint(2, SPEC['pages'])}")

        @task(2)
        def list_filtered(self):
            project = random.choice(SPEC["allocations"])
            sort = random.choice(["status", "-name", "age", "flavor"])
            page = random.randint(1, 10)
            self.page("instance list, filtered", f"/instances/?project={project}&sort={sort}&page={page}")

        @task(1)
        def list_poll(self):
            start = random.randrange(0, len(SPEC["instances"]) - 50)
            ids = ",".join(map(str, SPEC["instances"][start:start + 50]))
            self.page("instance list poll (rows)", f"/instances/rows/?ids={ids}", **{"HX-Request": "true"})

        @task(3)
        def detail(self):
            self.page("instance detail", f"/instances/{random.choice(SPEC['instances'])}/")

        @task(1)
        def allocations(self):
            self.page("allocation list", "/allocations/")

        @task(2)
        def allocation(self):
            self.page("allocation detail", f"/allocations/{random.choice(SPEC['allocations'])}/")


# --- The driver -------------------------------------------------------------------------------------


def setup_people_and_mirror() -> dict:
    """USERS researchers, PROJECTS allocations they all belong to, SERVERS servers in the mirror."""
    from allocations.models import Membership, MembershipRole
    from bench.instance_list import mirror_fill
    from tests.factories import PASSWORD, UserFactory
    from tests.fixtures.allocations import keystone_identity_for, make_allocation

    people = [UserFactory(username=f"bench-load-{n}") for n in range(USERS)]
    allocations, instances = [], []
    for p in range(PROJECTS):
        allocation = make_allocation(pi=people[0], project_id=f"bench-load-project-{p}", title=f"Bench lab {p}",
                                     sus=10**6)
        Membership.objects.bulk_create(Membership(allocation=allocation, user=u, role=MembershipRole.MEMBER,
                                                  keystone_role_granted=True) for u in people[1:])
        instances += mirror_fill(allocation=allocation, count=SERVERS // PROJECTS, start=p * SERVERS,
                                 creators=people[:10], prefix=f"lab{p}")
        allocations.append(allocation)
    for person in people:
        keystone_identity_for(person)
    return {"people": people, "allocations": allocations, "instances": instances, "password": PASSWORD}


def warm_cloud_caches(*, people, allocations) -> None:
    """What the dashboard and instance pages read from the cloud, put in the cache by the
    portal's own selectors with the gateway faked (as a first visit would, minutes before)."""
    from unittest import mock

    from instances import selectors
    from instances.models import Instance
    from portal.cloud import block_storage, compute, image, network
    from tests.instances.conftest import FLAVORS, IMAGES

    with mock.patch.object(compute, "quota_get", return_value=compute.Quota(instances=1100, cores=4000,
                                                                             ram_mb=16 * 1024**2)), \
            mock.patch.object(block_storage, "volume_quota_get", return_value=100), \
            mock.patch.object(network, "network_quota_get", return_value=network.NetworkQuota(10, 10)), \
            mock.patch.object(compute, "flavor_list", return_value=FLAVORS[:3]), \
            mock.patch.object(image, "image_get", return_value=IMAGES[0]):
        for allocation in allocations:
            instance = Instance.objects.filter(allocation=allocation).first()
            selectors.instance_login_user(user=people[0], instance=instance)
            for person in people:
                selectors.project_quotas(user=person, allocation=allocation)
                selectors.flavor_list_for(user=person, allocation=allocation)


def sign_in_everyone(*, base: str, emails: list[str], password: str) -> tuple[list[str], list]:
    """Each person signs in on the login page over HTTP (five at a time, each from its own loopback
    address); returns their session cookies and (SIGN_IN, ms, failed) for each sign-in."""
    import re
    from concurrent.futures import ThreadPoolExecutor

    import requests
    from django.conf import settings
    from requests.adapters import HTTPAdapter

    class FromAddress(HTTPAdapter):
        def __init__(self, address: str):
            self.address = address
            super().__init__()

        def init_poolmanager(self, *args, **kwargs):
            kwargs["source_address"] = (self.address, 0)
            super().init_poolmanager(*args, **kwargs)

    def sign_in(n: int):
        session = requests.Session()
        session.mount("http://", FromAddress(f"127.0.{n // 250 + 1}.{n % 250 + 1}"))
        start = time.perf_counter()
        form = session.get(f"{base}/accounts/login/", timeout=60)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
        answer = session.post(f"{base}/accounts/login/", allow_redirects=False, timeout=60, data={
            "csrfmiddlewaretoken": token, "login": emails[n], "password": password})
        signed_in = answer.status_code == 302 and "login" not in answer.headers.get("Location", "")
        return (session.cookies.get(settings.SESSION_COOKIE_NAME, ""),
                (SIGN_IN, (time.perf_counter() - start) * 1000, not signed_in))

    with ThreadPoolExecutor(5) as pool:
        done = list(pool.map(sign_in, range(len(emails))))
    return [cookie for cookie, _ in done if cookie], [sample for _, sample in done]


def run_locust(*, base: str, spec: dict) -> list:
    """Locust, headless, this file as its locustfile; returns (page, ms, failed) for every request."""
    seconds = int(RUN_TIME.rstrip("s")) if RUN_TIME.endswith("s") else 60
    command = [sys.executable, "-m", "locust", "-f", __file__, "--headless", "-u", str(USERS), "-r", str(RATE),
               "--run-time", RUN_TIME, "--stop-timeout", "5", "--host", base, "--only-summary",
               "--loglevel", "WARNING"]
    done = subprocess.run(command, env={**os.environ, "BENCH_LOAD_SPEC": json.dumps(spec)}, capture_output=True,
                          text=True, timeout=seconds + 60, check=False)
    path = Path(spec["samples"])
    if not path.exists():
        raise SystemExit(f"locust wrote no samples (exit {done.returncode}):\n{done.stdout[-2000:]}\n"
                         f"{done.stderr[-3000:]}")
    return json.loads(path.read_text())


def cloud_calls(base: str) -> str:
    """Gateway calls every gunicorn worker made, from /metrics (multiprocess mode), by operation."""
    import re

    import requests

    from portal.observability import metrics

    name = f"{metrics.cloud_call_seconds._name}_count"  # a labelled histogram shows once it has a sample
    calls: dict[str, float] = {}
    for line in requests.get(f"{base}/metrics", timeout=30).text.splitlines():
        if line.startswith(name):
            operation = re.search(r'operation="([^"]*)"', line)
            key = operation.group(1) if operation else "?"
            calls[key] = calls.get(key, 0) + float(line.rsplit(" ", 1)[1])
    detail = ", ".join(f"{op} {n:.0f}" for op, n in sorted(calls.items()))
    return f"{sum(calls.values()):.0f}" + (f" ({detail})" if detail else "")


def ms_figures(times: list[float]) -> str:
    ordered = sorted(times)
    p95 = ordered[max(1, math.ceil(0.95 * len(ordered))) - 1]
    return f"{statistics.median(ordered):7.1f} {p95:7.1f} {ordered[-1]:7.1f}"


def report(samples: list, calls: str) -> None:
    print(f"load: {USERS} users (1-3 s between pages), {RUN_TIME}, gunicorn {WORKERS} sync workers on 127.0.0.1, "
          f"{SERVERS:,} servers in {PROJECTS} projects in the mirror")
    print(f"{'page':30} {'requests':>8} {'errors':>6} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7}")
    pages = [s for s in samples if s[0] != SIGN_IN]
    for name in [*PAGES, "all pages", SIGN_IN]:  # the sign-ins ran before, five at a time
        rows = pages if name == "all pages" else [s for s in samples if s[0] == name]
        if rows:
            print(f"{name:30} {len(rows):8} {sum(s[2] for s in rows):6} {ms_figures([s[1] for s in rows])}")
    seconds = int(RUN_TIME.rstrip("s")) if RUN_TIME.endswith("s") else 0
    if seconds:
        print(f"pages served: {len(pages) / seconds:.1f} a second (the users ask for about {USERS / 2:.0f} a second)")
    print(f"gateway (cloud) calls made by the served portal during the run: {calls}")
    if pages:
        p95 = sorted(s[1] for s in pages)[max(1, math.ceil(0.95 * len(pages))) - 1]
        errors = sum(s[2] for s in pages) + sum(s[2] for s in samples if s[0] == SIGN_IN)
        met = p95 < TARGET_P95_MS and errors == 0
        print(f"target p95 < {TARGET_P95_MS} ms and 0 errors: {'met' if met else 'NOT met'} "
              f"(p95 {p95:.1f} ms over all pages, {errors} errors)")


def main():
    os.environ.setdefault("PORTAL_TEST_DB", "test_portal_bench_load")
    os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/12")  # the benches' queues (none are run)
    os.environ.setdefault("TEST_CACHE_URL", "redis://127.0.0.1:6379/4")  # no test run's cache.clear() empties it
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections
    from django.test.utils import setup_databases, setup_test_environment, teardown_databases

    from bench.instance_list import portal_served  # sets Django up

    began = time.perf_counter()
    setup_test_environment()
    # Kept between runs (and emptied first): creating and migrating it takes longer than the run.
    old = setup_databases(verbosity=0, interactive=False, keepdb=True, serialized_aliases=set())
    try:
        call_command("flush", interactive=False, verbosity=0)
        made = {}

        def prepare():  # while gunicorn's workers load
            made.update(setup_people_and_mirror())
            warm_cloud_caches(people=made["people"], allocations=made["allocations"])

        with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
            metrics = Path(tmp) / "prometheus"
            metrics.mkdir()
            with portal_served(workers=WORKERS, env={"PROMETHEUS_MULTIPROC_DIR": str(metrics)},
                               while_starting=prepare) as base:
                spec = {"cookie": settings.SESSION_COOKIE_NAME, "allocations": [a.pk for a in made["allocations"]],
                        "instances": made["instances"], "samples": str(Path(tmp) / "samples.json"),
                        "pages": math.ceil(SERVERS / settings.PORTAL_INSTANCE_PAGE_SIZE)}
                spec["sessions"], signed_in = sign_in_everyone(base=base, emails=[p.email for p in made["people"]],
                                                               password=made["password"])
                ran = time.perf_counter()
                samples = run_locust(base=base, spec=spec)
                ran = time.perf_counter() - ran
                calls = cloud_calls(base)
        report(samples + signed_in, calls)
        print(f"{time.perf_counter() - began:.0f} s in all (locust {ran:.0f} s)")
    finally:
        connections.close_all()
        teardown_databases(old, verbosity=0, keepdb=True)

if __name__ == "__main__":
    main()
