"""Benchmark: GET /api/v1/instances/ (read from the mirror) vs a bare Nova listing.

Prints figures; asserts nothing about time. N servers in one project (BENCH_SERVERS, default 200)
on the devcloud, a throwaway test database, the API called with a personal token through DRF's
test client (authentication, throttling, pagination, serialization and the ETag all run).
Last line: `api/bare ratio: X`.
"""
from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
os.environ.setdefault("PORTAL_TEST_DB", "test_portal_bench_api")
os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/12")

import django  # noqa: E402

django.setup()

from django.test.utils import setup_databases, setup_test_environment, teardown_databases  # noqa: E402

N = int(os.environ.get("BENCH_SERVERS", "200"))
REQUESTS = 200


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median_time(fn, runs: int) -> float:
    return statistics.median(timed(fn) for _ in range(runs))


def main():
    from rest_framework.test import APIClient

    from api.tokens import token_create
    from bench.instance_list import project_with_servers
    from tests.factories import UserFactory
    from tests.instances.integration_support import remove_directly

    setup_test_environment()
    old = setup_databases(verbosity=0, interactive=False)
    user, allocation = UserFactory(username="bench-api"), None
    try:
        allocation, conn_p = project_with_servers(user=user, title="Bench API")
        _, raw = token_create(user=user, name="bench", scope="read", expires_in_days=1)
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        url = "/api/v1/instances/?page_size=500"
        first = client.get(url)
        assert first.status_code == 200 and len(first.json()["results"]) == N, first.status_code

        api = median_time(lambda: client.get(url), 15)
        bare = median_time(lambda: list(conn_p.compute.servers(details=True)), 5)
        times = sorted(timed(lambda: client.get(url)) for _ in range(REQUESTS))
        p95 = times[int(0.95 * len(times)) - 1]
        etag = first["ETag"]
        not_modified = median_time(lambda: client.get(url, HTTP_IF_NONE_MATCH=etag), 15)
        print(f"servers: {N}")
        print(f"GET {url} (median of 15): {api * 1000:.1f} ms, {len(first.content) // 1024} KiB")
        print(f"GET {url} p95 of {REQUESTS}: {p95 * 1000:.1f} ms (median {statistics.median(times) * 1000:.1f} ms)")
        print(f"GET {url} with If-None-Match, 304 (median of 15): {not_modified * 1000:.1f} ms")
        print(f"bare openstacksdk servers(details=True) (median of 5): {bare * 1000:.1f} ms")
        print(f"api/bare ratio: {api / bare:.3f}")
    finally:
        if allocation is not None:
            remove_directly(allocation)
        from django.db import connections
        connections.close_all()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
