"""Create a Slurm cluster with the defaults in Chromium, on the real devcloud (issue 10): the head
becomes ready on the live page, which shows the nodes and how to connect; then delete it."""
import re

import pytest

from clusters.models import Cluster, ClusterState
from tests.browser.conftest import sign_in
from tests.fixtures.celery_worker import wait_for
from tests.instances.integration_support import devcloud_ready, instances_allocation, nova_servers  # noqa: F401


@pytest.fixture(scope="session")
def devcloud(devcloud_ready):
    return devcloud_ready


pytestmark = [pytest.mark.browser, pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_create_a_cluster_with_the_defaults_in_the_browser(page, screenshot, instances_allocation,
                                                           celery_worker_process):
    pi = instances_allocation.pi
    page.on("dialog", lambda dialog: dialog.accept())  # delete asks first
    sign_in(page, pi)

    page.get_by_role("navigation").get_by_role("link", name="Clusters").click()
    page.get_by_role("link", name="New cluster").click()
    # the defaults: m3.small head, m3.quad workers, up to 4, 10 idle minutes, Featured Ubuntu 24.04
    assert "m3.small" in page.locator("#id_head_flavor option:checked").inner_text()
    assert "m3.quad" in page.locator("#id_worker_flavor option:checked").inner_text()
    assert page.locator("#id_image option:checked").inner_text() == "Featured-Ubuntu24"
    assert page.get_by_label("Up to workers").input_value() == "4"
    page.get_by_test_id("cost").filter(has_text="432 SU/day").wait_for()
    page.get_by_label("Up to workers").fill("2")
    page.get_by_label("Up to workers").dispatch_event("change")
    page.get_by_test_id("cost").filter(has_text="240 SU/day").wait_for()  # (2 + 2 × 4) × 24
    screenshot("new-cluster")
    page.get_by_role("button", name="Create cluster").click()

    page.locator('#cluster-live[data-state="ready"]').wait_for(timeout=240_000)
    page.get_by_test_id("connect").filter(has_text="sbatch hello.sbatch").wait_for()
    # the public IP reaches Nova's addresses (and so the mirror) a while after the head is ready
    page.get_by_test_id("connect").filter(has_text=re.compile(r"ssh ubuntu@\d+\.\d+\.\d+\.\d+")).wait_for(
        timeout=180_000)
    nodes = page.get_by_test_id("nodes")
    for name in ("head", "w1", "w2"):
        nodes.locator(f'tr[data-node="{name}"]').wait_for()
    nodes.locator('tr[data-node="head"]').filter(has_text="ACTIVE").wait_for(timeout=60_000)
    screenshot("ready")

    cluster = Cluster.objects.get(allocation=instances_allocation, name="hpc")
    page.get_by_role("button", name="Delete cluster").click()
    page.locator('#cluster-live[data-state="deleted"]').wait_for(timeout=240_000)
    assert Cluster.objects.get(pk=cluster.pk).state == ClusterState.DELETED
    pid = instances_allocation.openstack_project_id
    wait_for(lambda: not [s for s in nova_servers(pid) if s.name.startswith("hpc-")], timeout=120,
             message="no server of the cluster left")
