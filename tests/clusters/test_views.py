"""The cluster pages on the unit fake cloud: New cluster with its defaults and cost preview, the
live cluster page and its poll, max workers, delete; the menu entry."""
from __future__ import annotations

import pytest
from django.urls import reverse

from allocations.charging import su_per_hour
from clusters.models import Cluster, ClusterOperation

pytestmark = pytest.mark.django_db


def test_new_cluster_offers_the_defaults_and_their_cost(user_client, cloud, allocation):
    page = user_client.get(reverse("clusters:create")).content.decode()
    assert 'value="f-m3-small" selected' in page and 'value="f-m3-quad" selected' in page
    assert 'value="img-ubuntu" selected' in page and 'name="max_workers" value="4"' in page
    assert 'name="idle_minutes" value="10"' in page
    # m3.small 2 SU/h, m3.quad 4 SU/h: at most (2 + 4 × 4) × 24 = 432 SU/day, 48 SU/day idle
    assert "2.00 SU/hour" in page and "4.00 SU/hour" in page and "432 SU/day" in page and "48 SU/day" in page
    cost = user_client.get(reverse("clusters:cost"), {"project": allocation.pk, "head_flavor": "f-m3-small",
                                                      "worker_flavor": "f-g3-small", "max_workers": "2"},
                           HTTP_HX_REQUEST="true").content.decode()
    gpu = su_per_hour(flavor_name="g3.small", vcpus=4)  # the family's rate as admin set it
    assert f"{gpu:.2f} SU/hour" in cost and f"{(2 + gpu * 2) * 24:.0f} SU/day" in cost


def test_creating_with_the_defaults_launches_the_head_and_shows_the_cluster(user_client, cloud, allocation):
    response = user_client.post(f"{reverse('clusters:create')}?project={allocation.pk}", {
        "project": allocation.pk, "name": "hpc", "image": "img-ubuntu", "head_flavor": "f-m3-small",
        "worker_flavor": "f-g3-small", "max_workers": 3, "idle_minutes": 10, "ssh_key": ""})
    cluster = Cluster.objects.get(name="hpc")
    assert response.status_code == 302 and response["Location"] == reverse("clusters:detail", args=[cluster.pk])
    assert cluster.worker_gpus == 1 and cluster.nodes.count() == 4 and cluster.image_family == "ubuntu"
    page = user_client.get(response["Location"]).content.decode()
    assert "Creating" in page and 'hx-trigger="every 2s"' in page and 'data-node="w3"' in page
    assert "hpc" in user_client.get(reverse("clusters:list")).content.decode()
    # the poll answers with the live part only
    live = user_client.get(response["Location"], HTTP_HX_REQUEST="true").content.decode()
    assert live.lstrip().startswith('<div id="cluster-live"')


def test_a_name_in_use_is_refused_at_the_field(user_client, cluster, allocation):
    response = user_client.post(f"{reverse('clusters:create')}?project={allocation.pk}", {
        "project": allocation.pk, "name": "demo", "image": "img-ubuntu", "head_flavor": "f-m3-small",
        "worker_flavor": "f-m3-quad", "max_workers": 2, "idle_minutes": 10})
    assert response.status_code == 200 and "already has a cluster named" in response.content.decode()


def test_a_ready_cluster_shows_how_to_connect_and_takes_max_workers_and_delete(user_client, ready):
    page = user_client.get(reverse("clusters:detail", args=[ready.pk])).content.decode()
    assert "sbatch hello.sbatch" in page and "apptainer exec" in page and 'hx-trigger="every 15s"' in page
    user_client.post(reverse("clusters:max_workers", args=[ready.pk]), {"max_workers": 1})
    ready.refresh_from_db()
    assert ready.max_workers == 1
    page = user_client.post(reverse("clusters:max_workers", args=[ready.pk]), {"max_workers": 33}, follow=True)
    ready.refresh_from_db()
    assert ready.max_workers == 1 and "Choose 1 to 32" in page.content.decode()  # the head knows 32 workers
    user_client.post(reverse("clusters:max_workers", args=[ready.pk]), {"max_workers": 9})
    ready.refresh_from_db()
    assert ready.max_workers == 9
    user_client.post(reverse("clusters:delete", args=[ready.pk]))
    ready.refresh_from_db()
    assert ready.state == "deleting" and ClusterOperation.objects.filter(cluster=ready, kind="delete").exists()


def test_the_menu_leads_to_the_clusters(user_client):
    page = user_client.get(reverse("instances:list")).content.decode()
    assert f'href="{reverse("clusters:list")}"' in page
