"""Benchmark: one meter run over many servers in many projects.

Prints seconds; asserts nothing about time. BENCH_PROJECTS (default 100) projects of
BENCH_SERVERS_PER_PROJECT (default 100) servers each. The cloud is faked at the gateway
(`portal.cloud.usage.server_usage_list` for the listing, `server_action_list` for Nova's action
log); the database is real: a throwaway test database, as bench/instance_list.py makes.

Three runs, as the hourly beat would make them:
1. first sight: every server is new (a cursor made for each) and charged for its first hour;
2. a busy hour: 10% of the servers were stopped half-way (Nova's log has the stop), 2% changed
   state with no action (only the mirror saw it), 1% were deleted (Nova's log has the delete),
   and 1 server per project came and went between the runs (only the mirror saw it);
3. a quiet hour: nothing changed.
Last line: `busy run: X s for N servers in P projects`.
"""
from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.test")
os.environ.setdefault("PORTAL_TEST_DB", "test_portal_bench_meter")
os.environ.setdefault("TEST_REDIS_URL", "redis://127.0.0.1:6379/12")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test.utils import CaptureQueriesContext, setup_databases, setup_test_environment, teardown_databases  # noqa: E402

PROJECTS = int(os.environ.get("BENCH_PROJECTS", "100"))
PER_PROJECT = int(os.environ.get("BENCH_SERVERS_PER_PROJECT", "100"))
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
FLAVORS = [("m3.quad", 4), ("m3.small", 2), ("g3.large", 16), ("r3.large", 64)]


class FakeCloud:
    """The projects' servers and action logs, answered by the gateway functions the meter calls."""

    def __init__(self):
        from portal.cloud.usage import ServerUsage

        self.servers: dict[str, dict[str, ServerUsage]] = {}
        self.actions: dict[str, list] = {}
        for p in range(PROJECTS):
            project = self.servers.setdefault(f"bench-{p}", {})
            for s in range(PER_PROJECT):
                flavor, vcpus = FLAVORS[s % len(FLAVORS)]
                sid = f"p{p}-s{s}"
                project[sid] = ServerUsage(id=sid, name=f"node-{s}", status="ACTIVE", flavor_name=flavor, vcpus=vcpus,
                                           created_at=T0, user_id=f"ks-user-{p}", updated_at=T0)

    def server_usage_list(self, *, scope):
        return list(self.servers[scope.project_id].values())

    def server_action_list(self, *, scope, server_id, changes_since=None):
        return [a for a in self.actions.get(server_id, [])
                if changes_since is None or (a.finish_time or a.start_time) >= changes_since]

    def act(self, server_id, action, at):
        from portal.cloud.usage import ServerAction

        self.actions.setdefault(server_id, []).append(ServerAction(
            action=action, request_id=f"req-{server_id}-{action}", failed=False,
            start_time=at - timedelta(seconds=3), finish_time=at, events=1))

    def busy_hour(self, start):
        """Stops, mirror-only changes, deletions and a brief server per project, inside [start, start+1h)."""
        from dataclasses import replace

        from allocations.models import ServerStateChange

        half, seen = start + timedelta(minutes=30), []
        for p, (project_id, project) in enumerate(self.servers.items()):
            for s, sid in enumerate(list(project)):
                if s % 10 == 0:  # stopped half-way, through Nova
                    self.act(sid, "stop", half)
                    project[sid] = replace(project[sid], status="SHUTOFF", updated_at=half)
                elif s % 50 == 1:  # the guest powered off: only the mirror saw when
                    seen.append(ServerStateChange(project_id=project_id, server_id=sid, status="SHUTOFF",
                                                  since=start + timedelta(minutes=20), flavor_name="m3.quad",
                                                  vcpus=4, seen_at=start + timedelta(minutes=21)))
                    project[sid] = replace(project[sid], status="SHUTOFF", updated_at=start + timedelta(minutes=50))
                elif s % 100 == 3:  # deleted
                    self.act(sid, "delete", start + timedelta(minutes=15))
                    del project[sid]
            brief = f"p{p}-brief"  # came and went between the runs
            seen.append(ServerStateChange(project_id=project_id, server_id=brief, status="ACTIVE",
                                          since=start + timedelta(minutes=5), flavor_name="m3.small", vcpus=2,
                                          seen_at=start + timedelta(minutes=6)))
            self.act(brief, "delete", start + timedelta(minutes=25))
        ServerStateChange.objects.bulk_create(seen)


def timed_run(now) -> tuple[float, str]:
    """Wall seconds of one run, and what they were spent on: this process's CPU (Python), the
    database's answers, and the number of queries."""
    from allocations import metering

    with CaptureQueriesContext(connection) as queries:
        started, cpu = time.perf_counter(), time.process_time()
        metering.allocations_meter(now=now)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    db = sum(float(q["time"]) for q in queries.captured_queries)
    return elapsed, f"{len(queries)} queries ({db:.2f} s in the database), {cpu:.2f} s CPU in this process"


def main():
    from allocations.models import LedgerEntry
    from portal.cloud import usage
    from tests.factories import UserFactory
    from tests.fixtures.allocations import make_allocation

    setup_test_environment()
    old = setup_databases(verbosity=0, interactive=False)
    try:
        cloud = FakeCloud()
        usage.server_usage_list = cloud.server_usage_list
        usage.server_action_list = cloud.server_action_list
        for p in range(PROJECTS):
            make_allocation(pi=UserFactory(), sus=10**7, project_id=f"bench-{p}", title=f"Bench {p}")
        total = PROJECTS * PER_PROJECT
        print(f"{total} servers in {PROJECTS} projects (cloud faked at the gateway, PostgreSQL real)")

        first, q1 = timed_run(T0 + timedelta(hours=1))
        print(f"first-sight run: {first:.2f} s, {q1}; {LedgerEntry.objects.filter(kind='usage').count()} rows")

        cloud.busy_hour(T0 + timedelta(hours=1))
        before = LedgerEntry.objects.filter(kind="usage").count()
        busy, q2 = timed_run(T0 + timedelta(hours=2))
        print(f"busy run: {busy:.2f} s, {q2}; "
              f"{LedgerEntry.objects.filter(kind='usage').count() - before} rows")

        before = LedgerEntry.objects.filter(kind="usage").count()
        quiet, q3 = timed_run(T0 + timedelta(hours=3))
        print(f"quiet run: {quiet:.2f} s, {q3}; "
              f"{LedgerEntry.objects.filter(kind='usage').count() - before} rows")
        print(f"load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        print(f"busy run: {busy:.2f} s for {total} servers in {PROJECTS} projects")
    finally:
        from django.db import connections

        connections.close_all()
        teardown_databases(old, verbosity=0)


if __name__ == "__main__":
    main()
