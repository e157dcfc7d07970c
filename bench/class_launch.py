"""Benchmark: a 50-seat class launched through the portal against a hand-written concurrent
openstacksdk script making the same 50 servers with per-seat user data and public IPs (issue 11).

Runs tests/integration/test_class_launch_bench.py (the local cloud, four worker processes on the
cloud queue as `make run` has) and prints both times, `class/sdk ratio: X` (target <= 1.2) and
seats per minute. BENCH_CLASS_SEATS (default 50) and BENCH_CLASS_SDK_THREADS (default 8) change it.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    env = {"DJANGO_SETTINGS_MODULE": "portal.settings.test", "PORTAL_TEST_DB": "test_portal_bench_classes",
           **os.environ}
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", "-m", "load",
               "tests/integration/test_class_launch_bench.py"]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
