import pytest
from rest_framework.test import APIClient

from api.tokens import token_create
from tests.instances.conftest import allocation, cloud, other_allocation  # noqa: F401 - the fake cloud


@pytest.fixture
def make_token(user):
    def make(scope="write", allocation=None, owner=None, days=30):
        return token_create(user=owner or user, name="t", scope=scope, expires_in_days=days, allocation=allocation)
    return make


@pytest.fixture
def api(make_token):
    """An API client carrying a read-write token of `user`."""
    _, raw = make_token()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def bearer(raw: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client
