"""A cluster of the user's allocation made through the services, on the unit fake cloud (faked at
the gateway functions). Its launches are recorded, not run: no worker takes them here."""
from __future__ import annotations

import pytest

from clusters import services
from portal.cloud import compute
from tests.instances.conftest import FLAVORS, allocation, cloud  # noqa: F401 - fixtures used here


@pytest.fixture(autouse=True)
def _metadata_set(monkeypatch):
    monkeypatch.setattr(compute, "server_metadata_set", lambda **kw: None)


def flavor(name: str) -> compute.Flavor:
    return next(f for f in FLAVORS if f.name == name)


@pytest.fixture
def cluster(cloud, allocation, user):  # noqa: F811 - fixtures imported above
    return services.cluster_create(user=user, allocation=allocation, name="demo", image_id="img-ubuntu",
                                   image_name="Featured-Ubuntu24", family="ubuntu", head_flavor=flavor("m3.small"),
                                   worker_flavor=flavor("m3.quad"), max_workers=2, idle_minutes=10)


@pytest.fixture
def ready(cluster):
    """The cluster once its head is ACTIVE (as operation_pass would leave it)."""
    cluster.state = "ready"
    cluster.head_address = "10.0.0.5"
    cluster.save(update_fields=["state", "head_address"])
    cluster.nodes.filter(name="head").update(state="active", server_id="srv-head")
    return cluster
