import os
import subprocess
from pathlib import Path

import pytest

pytest_plugins = [
    "tests.fixtures.users",
    "tests.fixtures.celery_worker",
    "tests.fixtures.allocations",
    "tests.fixtures.cloud_allocations",
]


@pytest.fixture(autouse=True)
def _clean_cloud_connections():
    """Connections are cached per process; tests that switch clouds must not share them."""
    yield
    from portal.cloud.connection import connection_cache_clear
    from tests import cloud_sdk

    connection_cache_clear()
    cloud_sdk.connection_cache_clear()


@pytest.fixture(autouse=True)
def _fresh_cache():
    """The cache is a real Redis database; allauth keeps rate limits in it, so each test starts empty."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture(scope="session", autouse=True)
def _background_servers(request):
    """DEVCLOUD_BACKGROUND_SERVERS=N: the local cloud holds N servers of its own for the whole run (a busy
    cloud; see devcloud/background.py). `devcloud up` makes or removes them to reach N; it prints how long
    that took and the memory it cost, shown here. Unset: nothing happens; runs with no cloud test skip it."""
    count = os.environ.get("DEVCLOUD_BACKGROUND_SERVERS", "").strip()
    wants_cloud = any(item.get_closest_marker("integration") or item.get_closest_marker("browser")
                      for item in request.session.items)
    if not count or not wants_cloud or os.environ.get("OS_CLOUD", "devcloud-admin") != "devcloud-admin":
        return
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    result = subprocess.run([str(root / "devcloud" / "devcloud"), "up"], cwd=root, env=env, capture_output=True,
                            text=True, timeout=1800, check=False)
    if result.returncode != 0:
        pytest.fail(f"devcloud/devcloud up with DEVCLOUD_BACKGROUND_SERVERS={count} failed:\n{result.stdout}\n"
                    f"{result.stderr}", pytrace=False)
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    for line in result.stdout.splitlines():
        if "background" in line and reporter is not None:
            reporter.write_line(f"devcloud {line.strip()}")
