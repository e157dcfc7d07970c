"""Helpers for the instance integration tests: the portal's own view of the real project."""
from __future__ import annotations

from django.urls import reverse

from instances.models import CloudAction, LaunchRequest
from tests.cloud_sdk import connection_get
from tests.fixtures.celery_worker import wait_for


def nova(project_id: str):
    return connection_get(project_id=project_id).compute


def nova_servers(project_id: str) -> list:
    return list(nova(project_id).servers(details=True))


def wait_nova_empty(project_id: str, timeout: float = 90) -> None:
    """Until the project holds no server in Nova. A delete the portal saw succeed (the server DELETED,
    or gone from the API) still takes nova-compute a while to finish, longer on a busy cloud."""
    wait_for(lambda: not nova_servers(project_id), timeout=timeout, interval=1,
             message=f"project {project_id} to hold no servers in Nova")


def wait_nova_gone(project_id: str, server_id: str, timeout: float = 90) -> None:
    """Until Nova no longer finds the server (see wait_nova_empty)."""
    wait_for(lambda: nova(project_id).find_server(server_id, ignore_missing=True) is None, timeout=timeout,
             interval=1, message=f"server {server_id} to be gone from Nova")


def launch_via_form(client, allocation, **fields) -> LaunchRequest:
    """Post the launch form as a user would and return the request it made."""
    flavor_name = fields.pop("flavor")
    flavor = next(f for f in connection_get().compute.flavors(details=True, is_public=None) if f.name == flavor_name)
    image_name = fields.pop("image", "Featured-Ubuntu24")
    image = connection_get().image.find_image(image_name, ignore_missing=False) if image_name else None
    data = {"project": allocation.pk, "name": "node", "image": image.id if image else "", "flavor": flavor.id,
            "count": 1, **fields}
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


def start_worker(log_path, queues):
    """A Celery worker of our own (the session worker must not take this test's tasks), consuming
    `queues`: one name, a comma-separated string or a list (e.g. a test's own cloud queue)."""
    import os
    import subprocess
    import sys
    import time

    from django.conf import settings
    from django.db import connection

    db = connection.settings_dict
    env = {**os.environ, "DATABASE_CONN_MAX_AGE": "0",
           "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE") or "portal.settings.test",
           "DATABASE_URL": f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
                           f"/{db['NAME']}"}
    if not isinstance(queues, str):
        queues = ",".join(queues)
    out = open(log_path, "ab")  # noqa: SIM115 - the worker writes to it for as long as it runs
    proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "portal", "worker", "-l", "info", "-Q", queues,
                             "--pool", "threads", "--concurrency", "2", "-n", f"kill-{time.time_ns()}@%h",
                             "--without-gossip", "--without-mingle", "--without-heartbeat"],
                            cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT)
    wait_for(lambda: log_path.read_bytes().count(b"ready.") >= 1 and proc.poll() is None, timeout=60,
             message="a worker to start")
    return proc


import uuid  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def devcloud_ready():
    """Until tests/integration/conftest.py publishes `devcloud`: fail fast if the cloud does not answer."""
    from portal.cloud.compute import compute_ping

    compute_ping(timeout=10)
    return True


def provision_directly(*, pi, kind: str, title: str, sus: int = 10000, members=()):
    """An allocation provisioned in-process through the portal's own provisioning (project, quotas,
    flavor access by kind, the PI's Keystone user with the member role, the service user as member),
    without the allocations worker, so it is safe next to a running session worker."""
    from datetime import timedelta

    from django.utils import timezone

    from allocations import provisioning
    from allocations.models import Allocation, LedgerEntry, Membership
    from portal import services as portal_services

    today = timezone.localdate()
    allocation = Allocation.objects.create(
        title=title, pi=pi, kind=kind, justification="Tests.", requested_sus=sus, awarded_sus=sus,
        start_date=today - timedelta(days=1), end_date=today + timedelta(days=365), status="approved",
        openstack_project_name=f"inst-test-{uuid.uuid4().hex[:8]}")
    Membership.objects.create(allocation=allocation, user=pi, role="pi")
    for member in members:
        Membership.objects.create(allocation=allocation, user=member, role="member")
    LedgerEntry.objects.create(allocation=allocation, kind="award", sus=sus, note="award")
    operation = portal_services.operation_create(kind="allocation.provision", target=f"allocation:{allocation.pk}")
    provisioning.allocation_provision(operation=operation)
    allocation.refresh_from_db()
    return allocation


def remove_directly(allocation) -> None:
    """Delete what a test made in the allocation's project, the project and its people's Keystone users."""
    from allocations.models import KeystoneIdentity
    from tests.integration.conftest import cleanup_project

    conn = connection_get()
    project_id = allocation.openstack_project_id
    try:
        for image in conn.image.images(owner=project_id):
            conn.image.delete_image(image, ignore_missing=True)
        problems = cleanup_project(conn, project_id)
        assert not problems, problems
    finally:
        conn.identity.delete_project(project_id, ignore_missing=True)
        for ks in KeystoneIdentity.objects.filter(user__memberships__allocation=allocation):
            conn.identity.delete_user(ks.keystone_user_id, ignore_missing=True)


@pytest.fixture
def instances_allocation(devcloud, transactional_db):
    """An active research-GPU allocation provisioned for real: the portal acts in its project as
    the PI's own Keystone user (member role), never as admin."""
    from tests.factories import UserFactory

    allocation = provision_directly(pi=UserFactory(), kind="research_gpu", title="Instances test")
    connection_get().set_compute_quotas(allocation.openstack_project_id, instances=30, cores=200,
                                        ram=1024 * 1024)
    yield allocation
    remove_directly(allocation)


def run_passes(one_pass, pk: int, *, timeout: float = 120):
    """Run a long operation's passes in-process until its row is final, as the runner would with
    its re-queued checks (for tests that must not hand the row to a session worker)."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        row = one_pass(pk)
        if row.is_final:
            return row
        if time.monotonic() > deadline:
            raise AssertionError(f"{type(row).__name__} {pk} still {row.state} ({row.step}) after {timeout}s")
        time.sleep(0.5)
