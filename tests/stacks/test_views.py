"""The stack pages and their services on the unit fake cloud, Heat faked at the gateway: New stack
from the library with its parameters form and cost preview; refusal before Heat is called; Heat's
400 on the field; the stack made and followed by its operation; the live page; the stack badge on
the instance list; delete; stacks made with the CLI found by the sync."""
from __future__ import annotations

from decimal import Decimal

import pytest
from django.urls import reverse

from allocations.models import LedgerEntry
from instances.models import Instance
from portal.cloud.orchestration import StackOutput
from stacks import services
from stacks.models import Stack, StackOperation, StackResource, StackTemplate
from stacks.operations import operation_pass
from stacks.templating import template_parse
from tests.instances.conftest import roomy_quota
from tests.stacks.conftest import FLAVORS

pytestmark = pytest.mark.django_db


def library(name: str) -> StackTemplate:
    return StackTemplate.objects.get(name=name)


def parameters_page(client, allocation, name="Two servers on a private network"):
    return client.post(f"{reverse('stacks:create')}?project={allocation.pk}", {
        "project": allocation.pk, "step": "template", "source": "library", "library": library(name).pk})


def create(client, allocation, **values):
    data = {"project": allocation.pk, "step": "parameters", "template": library("Two servers on a private network")
            .template, "template_name": "Two servers on a private network", "stack_name": "pair",
            "param-server_count": "2", "param-flavor": "m3.small", "param-image": "Featured-Ubuntu24",
            "param-cidr": "10.50.0.0/24", "param-db_password": "s3cretpass1", **values}
    return client.post(f"{reverse('stacks:create')}?project={allocation.pk}", data)


def test_the_library_template_opens_its_parameters_form_with_the_cost(user_client, heat, allocation):
    page = parameters_page(user_client, allocation).content.decode()
    # the form is Heat's reading of the template: its groups, labels, the hidden one a password field
    assert page.count('data-testid="parameter-group"') == 3
    assert ">Servers</legend>" in page and ">Secrets</legend>" in page and "Database password" in page
    assert 'type="password" name="param-db_password"' in page
    assert '<option value="m3.tiny" selected>' in page
    assert 'name="stack_name" id="id_stack_name" value="two-servers-on-a' in page
    # its defaults make 2 × m3.tiny: 1 SU/hour each
    assert "2 × m3.tiny" in page and "2.00 SU/hour" in page and "48 SU/day" in page
    assert heat.calls["template_validate"] == 1 and not heat.calls["stack_create"]


def test_the_cost_preview_follows_the_values(user_client, heat, allocation):
    cost = user_client.post(f"{reverse('stacks:cost')}?project={allocation.pk}", {
        "template": library("Two servers on a private network").template, "param-server_count": "3",
        "param-flavor": "m3.quad"}, HTTP_HX_REQUEST="true").content.decode()
    # 3 servers of a ResourceGroup, m3.quad at 4 SU/hour each
    assert "3 × m3.quad" in cost and "4.00 SU/hour" in cost and "12.00 SU/hour" in cost and "288 SU/day" in cost
    one = user_client.post(f"{reverse('stacks:cost')}?project={allocation.pk}", {
        "template": library("Server + volume").template}, HTTP_HX_REQUEST="true").content.decode()
    assert "1 × m3.small" in one and "2.00 SU/hour" in one and "10 GB of volumes" in one


def test_a_stack_the_balance_cannot_carry_is_refused_before_heat_is_called(user_client, heat, allocation):
    # the allocation has 50 SUs: 4 × m3.quad for 24 hours need 384
    LedgerEntry.objects.create(allocation=allocation, kind="usage", sus=-(allocation.balance() - 50), note="used")
    page = create(user_client, allocation, **{"param-server_count": "4", "param-flavor": "m3.quad"}).content.decode()
    assert 'data-testid="refusal"' in page and "Not enough SUs" in page and "16.00 SU/hour" in page
    assert "384.00 SUs" in page and "50.00 left" in page
    assert heat.calls["stack_create"] == 0 and heat.calls["stack_preview"] == 0
    assert not Stack.objects.exists()


def test_a_stack_the_quota_cannot_carry_is_refused_before_heat_is_called(user_client, heat, cloud, allocation):
    cloud.quota = roomy_quota(cores=(4, 8), instances=(9, 10))
    page = create(user_client, allocation, **{"param-server_count": "3"}).content.decode()
    assert "The stack needs 3 instances; the project&#x27;s quota has 1 of 10 free." in page
    assert "The stack needs 6 vCPUs; the project&#x27;s quota has 4 of 8 free." in page
    assert heat.calls["stack_create"] == 0 and heat.calls["stack_preview"] == 0


def test_an_allocation_that_may_not_launch_refuses_the_stack_in_words(user, heat, allocation):
    data = template_parse(library("Server + volume").template)
    cost = services.stack_cost(flavors=FLAVORS, data=data, values={"flavor": "m3.small"})
    allocation.status = "exhausted"
    allocation.save(update_fields=["status"])
    with pytest.raises(Exception, match="exhausted: nothing new can be made"):  # NoCloudAccess, in words
        services.stack_create(user=user, allocation=allocation, name="s", template="t", template_name="",
                              values={}, hidden=set(), cost=cost, quota=None)
    # (the New stack page offers only allocations that may launch: another's or an exhausted one is a 404)
    assert services.stack_refusals(allocation=allocation, cost=cost, quota=None) == [
        "The allocation “Protein folding” is exhausted: no new instances can be started in it."]
    assert not heat.calls["stack_preview"] and not heat.calls["stack_create"]


def test_heats_refusal_of_a_value_lands_on_its_field(user_client, heat, allocation):
    heat.preview_refusal = ("Parameter 'image' is invalid: Error validating value 'nope': "
                            "No images matching {'name': 'nope'}.")
    page = create(user_client, allocation, **{"param-image": "nope"}).content.decode()
    field = page[page.index('data-parameter="image"'):]
    field = field[:field.index("</div>\n        </div>") if "</div>\n        </div>" in field else 2000]
    assert "Error validating value &#x27;nope&#x27;: No images matching" in field and "is-invalid" in field
    assert heat.calls["stack_create"] == 0 and not Stack.objects.exists()


def test_a_stack_is_made_as_the_person_and_followed_to_complete(user_client, user, heat, cloud, allocation,
                                                                django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as sent:
        response = create(user_client, allocation)
    stack = Stack.objects.get(name="pair")
    assert response.status_code == 302 and response["Location"] == reverse("stacks:detail", args=[stack.pk])
    assert len(sent) == 1 and heat.calls["stack_preview"] == 1 and heat.calls["stack_create"] == 0  # the task makes it
    # the hidden value is never kept on the row
    assert "db_password" not in stack.parameters and "s3cretpass1" not in str(Stack.objects.values().get())
    op = StackOperation.objects.get(stack=stack)
    op = operation_pass(op.pk)
    assert heat.created[0]["parameters"]["db_password"] == "s3cretpass1"
    assert heat.created[0]["scope"].identity.key == f"user:{user.keystone.keystone_user_id}"  # the person, not admin
    assert op.state == "running" and Stack.objects.get(pk=stack.pk).status == "CREATE_IN_PROGRESS"
    # a retried pass makes no second stack
    operation_pass(op.pk)
    assert heat.calls["stack_create"] == 1

    live = user_client.get(reverse("stacks:detail", args=[stack.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert live.lstrip().startswith('<div id="stack-live"') and 'hx-trigger="every 2s"' in live
    assert "Stack CREATE started" in live

    servers = [cloud.add("pair-node-0"), cloud.add("pair-node-1")]
    heat.finish("stack-1", servers=[s.id for s in servers],
                outputs=[StackOutput("addresses", ["10.50.0.5", "10.50.0.6"], "Each server's address")])
    op = operation_pass(op.pk)
    assert op.state == "succeeded"
    assert set(StackResource.objects.filter(stack=stack, type="OS::Nova::Server")
               .values_list("physical_resource_id", flat=True)) == {s.id for s in servers}
    page = user_client.get(reverse("stacks:detail", args=[stack.pk])).content.decode()
    assert "CREATE_COMPLETE" in page and "10.50.0.5" in page and "Each server&#x27;s address" in page
    assert 'hx-trigger="every 2s"' not in page  # final: no more polling
    assert 'data-confirm="Delete the stack pair?' in page


def test_stack_made_servers_carry_the_badge_without_a_query_more(user_client, heat, cloud, allocation,
                                                                 django_assert_max_num_queries):
    from instances.services import project_sync

    servers = [cloud.add(f"node-{i}") for i in range(3)] + [cloud.add("alone")]
    project_sync(allocation=allocation, full=True)
    with django_assert_max_num_queries(9):  # as the list page without stacks (tests/instances/test_list_pages.py)
        before = user_client.get(reverse("instances:list"), {"project": allocation.pk}).content.decode()
    assert "stack:" not in before
    stack = Stack.objects.create(allocation=allocation, project_id="proj-1", stack_id="s-1", name="trio",
                                 status="CREATE_COMPLETE")
    StackResource.objects.bulk_create([StackResource(stack=stack, logical_name=f"g.{i}", type="OS::Nova::Server",
                                                     physical_resource_id=s.id) for i, s in enumerate(servers[:3])])
    with django_assert_max_num_queries(9):
        page = user_client.get(reverse("instances:list"), {"project": allocation.pk}).content.decode()
    assert page.count('data-testid="stack-badge"') == 3 and "stack: trio" in page
    node = Instance.objects.get(server_id=servers[0].id)
    detail = user_client.get(reverse("instances:detail", args=[node.pk])).content.decode()
    assert "stack: trio" in detail and reverse("stacks:detail", args=[stack.pk]) in detail


def test_delete_asks_heat_and_follows_until_it_is_gone(user_client, heat, allocation):
    create(user_client, allocation)
    stack = Stack.objects.get(name="pair")
    operation_pass(StackOperation.objects.get(stack=stack).pk)
    heat.finish("stack-1", servers=[])
    operation_pass(StackOperation.objects.get(stack=stack).pk)
    user_client.post(reverse("stacks:delete", args=[stack.pk]))
    op = StackOperation.objects.get(stack=stack, kind="delete")
    op = operation_pass(op.pk)
    assert heat.calls["stack_delete"] == 1 and op.state == "running"
    from dataclasses import replace
    heat.stacks["stack-1"] = replace(heat.stacks["stack-1"], status="DELETE_COMPLETE")
    op = operation_pass(op.pk)
    stack.refresh_from_db()
    assert op.state == "succeeded" and stack.deleted_at is not None and not stack.resources.exists()
    assert 'data-stack="pair"' not in user_client.get(reverse("stacks:list")).content.decode()


def test_a_create_heat_refuses_in_the_task_shows_on_the_form_again(user_client, heat, allocation):
    create(user_client, allocation)
    stack = Stack.objects.get(name="pair")
    heat.create_refusal = "Parameter 'flavor' is invalid: \"m3.small\" is not an allowed value [\"m3.tiny\"]"
    op = operation_pass(StackOperation.objects.get(stack=stack).pk)
    assert op.state == "failed" and op.error_field == "flavor"
    page = user_client.get(reverse("stacks:detail", args=[stack.pk])).content.decode()
    assert "is not an allowed value" in page and "Change the parameters and try again" in page
    again = user_client.get(reverse("stacks:create"), {"project": allocation.pk, "from": stack.pk}).content.decode()
    field = again[again.index('data-parameter="flavor"'):][:1500]
    assert "is not an allowed value [&quot;m3.tiny&quot;]" in field


def test_stacks_made_with_the_cli_reach_the_list(user_client, user, heat, allocation, cloud):
    from portal.cloud.connection import Identity, Scope

    cli = Scope(Identity("user:cli", user.keystone.keystone_username, "x"), "proj-1")
    stack_id = heat.stack_create(scope=cli, name="from-cli", template="t", parameters={})
    server = cloud.add("from-cli-server")
    heat.finish(stack_id, servers=[server.id])
    result = services.stacks_sync(allocation=allocation)
    assert result["stacks"] == 1
    stack = Stack.objects.get(name="from-cli")
    assert not stack.made_in_portal and stack.created_by == user and stack.status == "CREATE_COMPLETE"
    assert stack.resources.filter(physical_resource_id=server.id).exists()
    listing = user_client.get(reverse("stacks:list"), {"project": allocation.pk}).content.decode()
    assert "from-cli" in listing and "CLI" in listing
    # gone from Heat: gone from the mirror
    heat.stacks.clear()
    services.stacks_sync(allocation=allocation)
    assert Stack.objects.get(pk=stack.pk).deleted_at is not None


def test_the_menu_leads_to_the_stacks(user_client):
    page = user_client.get(reverse("instances:list")).content.decode()
    assert f'href="{reverse("stacks:list")}"' in page


def test_cost_uses_the_charging_rules_of_the_launch_page(heat, allocation):
    from allocations.charging import su_per_hour
    from allocations.models import FlavorFamilyRate

    FlavorFamilyRate.objects.update_or_create(family="m3", defaults={"multiplier": Decimal("1.5")})
    cost = services.stack_cost(flavors=FLAVORS, data=template_parse(library("Server + volume").template),
                               values={"flavor": "m3.quad"})
    assert cost.per_hour == su_per_hour(flavor_name="m3.quad", vcpus=4) == Decimal("6.0")
