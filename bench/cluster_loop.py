"""Benchmark: the elastic Slurm loop through the portal (issue 10).

Runs tests/integration/test_clusters_loop.py::test_loop_timings (a real slurmctld with the slurm.conf
and programs the portal rendered, a live test server, a real Celery worker, the local cloud; needs
root, Debian's slurm-wlm and munge: scripts/ensure-slurm.sh) for BENCH_CLUSTER_LOOPS one-worker loops
(default 5) and prints submit→COMPLETED and idle→deleted (SuspendTime 20 s), and the portal's own time
per resume (request in → server requested) as p50/p95. Targets: the portal's part ≤ 1 s per resume, the
loop ≤ 60 s as measured with bare openstacksdk (../shared/notes/local-slurm.md: 59-61 s).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    env = {"DJANGO_SETTINGS_MODULE": "portal.settings.test", "PORTAL_TEST_DB": "test_portal_bench_clusters",
           "BENCH_CLUSTER_LOOPS": "5", **os.environ}
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-m", "load",
               "tests/integration/test_clusters_loop.py::test_loop_timings"]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
