"""Heat stacks against the real local cloud with a real Celery worker (issue 13, the Stacks page).

A stack from the library goes CREATE_COMPLETE, made as the PI's own Keystone user; its server is on
the instance list with the stack's badge and in the ledger after a meter run; a value Heat refuses
gets Heat's words on its field and makes nothing; delete leaves nothing in Nova, Cinder or Neutron.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from allocations.metering import allocation_meter
from allocations.models import LedgerEntry
from instances.services import project_sync
from stacks.models import Stack, StackOperation, StackTemplate
from tests.cloud_sdk import connection_get
from tests.fixtures.celery_worker import wait_for
from tests.instances.integration_support import instances_allocation, nova_servers

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
__all__ = ["instances_allocation"]
LIBRARY = "Server + volume"


@pytest.fixture(autouse=True)
def seeded_templates(transactional_db):
    """A transactional test's flush empties the tables its migrations seeded: seed them again."""
    from stacks.seeds import templates_seed

    templates_seed()


@pytest.fixture
def heat_cleanup(instances_allocation):
    """Whatever a failed test left in Heat is deleted before the project is cleaned."""
    yield
    conn = connection_get(project_id=instances_allocation.openstack_project_id)
    for stack in list(conn.orchestration.stacks()):
        conn.orchestration.delete_stack(stack, ignore_missing=True)
    wait_for(lambda: not list(conn.orchestration.stacks()), timeout=180, interval=2, message="no stack left in Heat")


def post_parameters(client, allocation, **values):
    template = StackTemplate.objects.get(name=LIBRARY)
    data = {"project": allocation.pk, "step": "parameters", "template": template.template, "template_name": LIBRARY,
            "stack_name": "web", "param-flavor": "m3.tiny", "param-image": "Featured-Ubuntu24",
            "param-volume_size": "1", **values}
    return client.post(f"{reverse('stacks:create')}?project={allocation.pk}", data)


def test_a_library_stack_is_made_charged_and_deleted_without_leftovers(client, instances_allocation, heat_cleanup,
                                                                        celery_worker_process):
    allocation, pid = instances_allocation, instances_allocation.openstack_project_id
    client.force_login(allocation.pi)
    # the library template opens its parameters form, read by Heat as the PI
    page = client.post(f"{reverse('stacks:create')}?project={allocation.pk}", {
        "project": allocation.pk, "step": "template", "source": "library",
        "library": StackTemplate.objects.get(name=LIBRARY).pk}).content.decode()
    assert 'name="param-flavor"' in page and "Volume size (GB)" in page and "1 × m3.small" in page

    # a value Heat refuses (its glance.image constraint): Heat's words on the field, nothing made
    refused = post_parameters(client, allocation, **{"param-image": "no-such-image"})
    body = refused.content.decode()
    field = body[body.index('data-parameter="image"'):][:2000]
    assert refused.status_code == 200 and "Error validating value &#x27;no-such-image&#x27;" in field
    assert not Stack.objects.exists()
    assert not list(connection_get(project_id=pid).orchestration.stacks())

    # the stack is made and followed to CREATE_COMPLETE
    response = post_parameters(client, allocation)
    assert response.status_code == 302, response.content.decode()[-2000:]
    stack = Stack.objects.get(name="web")
    wait_for(lambda: StackOperation.objects.get(stack=stack, kind="create").is_final, timeout=300, interval=2,
             message="the stack's create to finish")
    op = StackOperation.objects.get(stack=stack, kind="create")
    stack.refresh_from_db()
    assert op.state == "succeeded" and stack.status == "CREATE_COMPLETE", (op.error, stack.status_reason)
    server_id = stack.resources.get(logical_name="server").physical_resource_id
    [server] = [s for s in nova_servers(pid) if s.id == server_id]
    assert server.status == "ACTIVE" and server.user_id == allocation.pi.keystone.keystone_user_id
    assert next(o["value"] for o in stack.outputs if o["key"] == "server_id") == server_id
    page = client.get(reverse("stacks:detail", args=[stack.pk])).content.decode()
    assert "CREATE_COMPLETE" in page and 'data-resource="data_attached"' in page and server_id in page

    # its server is on the instance list with the stack's badge
    def listed():
        project_sync(allocation=allocation, full=True)
        return "stack: web" in client.get(reverse("instances:list"), {"project": allocation.pk}).content.decode()

    wait_for(listed, timeout=60, interval=2, message="the stack's server on the instance list with its badge")
    # and in the ledger after a meter run
    allocation_meter(allocation=allocation, now=timezone.now() + timedelta(hours=1))
    assert LedgerEntry.objects.filter(allocation=allocation, resource_id=server_id, kind="usage", sus__lt=0).exists()

    # delete: nothing of the stack is left in Nova, Cinder or Neutron
    volume_id = next(o["value"] for o in stack.outputs if o["key"] == "volume_id")
    client.post(reverse("stacks:delete", args=[stack.pk]))
    wait_for(lambda: Stack.objects.get(pk=stack.pk).deleted_at is not None, timeout=300, interval=2,
             message="the stack deleted")
    conn = connection_get(project_id=pid)
    wait_for(lambda: not nova_servers(pid), timeout=120, interval=1, message="no server left in Nova")
    wait_for(lambda: volume_id not in {v.id for v in conn.block_storage.volumes()}, timeout=120, interval=1,
             message="the stack's volume gone from Cinder")
    wait_for(lambda: not list(connection_get().network.networks(project_id=pid)), timeout=120, interval=1,
             message="no network of the project left in Neutron")
    assert not list(conn.orchestration.stacks())
