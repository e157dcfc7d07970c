"""Helpers for the instance integration tests: the portal's own view of the real project."""
from __future__ import annotations

from django.urls import reverse

from instances.models import CloudAction, LaunchRequest
from portal.cloud.connection import connection_get
from tests.fixtures.celery_worker import wait_for


def nova(project_id: str):
    return connection_get(project_id=project_id).compute


def nova_servers(project_id: str) -> list:
    return list(nova(project_id).servers(details=True))


def launch_via_form(client, allocation, **fields) -> LaunchRequest:
    """Post the launch form as a user would and return the request it made."""
    flavor = next(f for f in connection_get().compute.flavors(details=True) if f.name == fields.pop("flavor"))
    image = connection_get().image.find_image(fields.pop("image", "Featured-Ubuntu24"), ignore_missing=False)
    data = {"project": allocation.pk, "name": "node", "image": image.id, "flavor": flavor.id, "count": 1, **fields}
    before = set(LaunchRequest.objects.values_list("pk", flat=True))
    response = client.post(f"{reverse('instances:launch')}?project={allocation.pk}", data)
    assert response.status_code == 302, response.content.decode()[-3000:]
    return LaunchRequest.objects.exclude(pk__in=before).get()


def wait_final(row, timeout: float = 180):
    model = type(row)
    wait_for(lambda: model.objects.get(pk=row.pk).is_final, timeout=timeout,
             message=f"{model.__name__} {row.pk} to finish")
    return model.objects.get(pk=row.pk)


def act(client, instance, action: str, timeout: float = 120, **data) -> CloudAction:
    before = set(CloudAction.objects.values_list("pk", flat=True))
    client.post(reverse("instances:act", args=[instance.pk, action]), data)
    row = CloudAction.objects.exclude(pk__in=before).get()
    return wait_final(row, timeout)


def start_worker(log_path, queues: str):
    """A Celery worker of our own (the session worker must not take this test's tasks)."""
    import os
    import subprocess
    import sys
    import time

    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test", "DATABASE_CONN_MAX_AGE": "0",
           "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"}
    out = open(log_path, "ab")
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "portal", "worker", "-l", "info", "-Q", queues,
                             "--pool", "threads", "--concurrency", "2", "-n", f"kill-{time.time_ns()}@%h",
                             "--without-gossip", "--without-mingle", "--without-heartbeat"],
                            cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_for(lambda: log_path.read_bytes().count(b"ready.") >= 1 and proc.poll() is None, timeout=60,
             message="a worker to start")
    return proc


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def devcloud_ready():
    """Until tests/integration/conftest.py publishes `devcloud`: fail fast if the cloud does not answer."""
    from portal.cloud.compute import compute_ping

    compute_ping(timeout=10)
    return True
