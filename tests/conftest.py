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
