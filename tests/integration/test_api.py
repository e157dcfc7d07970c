"""The REST API against the real local cloud and a real Celery worker: a launch through the API
polled to ACTIVE in Nova, idempotent retries (also across a killed worker) that make one server,
an action and a delete, a preflight refusal, and the authorization matrix with real projects."""
import os
import signal
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from allocations.models import LedgerEntry
from api.models import ApiToken
from api.tokens import token_create, token_revoke
from instances.models import CloudAction, Instance, LaunchRequest
from instances.services import project_sync
from tests.cloud_sdk import connection_get
from tests.factories import UserFactory
from tests.fixtures.celery_worker import wait_for
from tests.instances.integration_support import (
    instances_allocation,
    nova_servers,
    provision_directly,
    remove_directly,
    start_worker,
    wait_nova_empty,
)

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]
__all__ = ["instances_allocation"]

FINAL = ("succeeded", "failed", "cancelled")


def bearer(user, **kw) -> APIClient:
    _, raw = token_create(user=user, name=kw.pop("name", "integration"), scope=kw.pop("scope", "write"),
                          expires_in_days=1, **kw)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def poll(client, location: str, timeout: float = 180) -> dict:
    """GET the status resource until its state is final, as a client of the API would."""
    def final():
        body = client.get(location).json()
        return body if body["state"] in FINAL else None
    return wait_for(final, timeout=timeout, interval=0.5, message=f"{location} to finish")


def launch_body(client, allocation, name: str, flavor: str = "m3.small", count: int = 1) -> dict:
    """The ids as a client finds them: from /flavors/ and /images/ of the allocation."""
    flavors = client.get(f"/api/v1/flavors/?allocation={allocation.pk}").json()
    images = client.get(f"/api/v1/images/?allocation={allocation.pk}").json()
    return {"allocation": allocation.pk, "name": name, "count": count,
            "flavor": next(f["id"] for f in flavors if f["name"] == flavor),
            "image": next(i["id"] for i in images if i["name"] == "Featured-Ubuntu24")}


def test_launch_poll_active_act_and_delete_through_the_api(instances_allocation, celery_worker_process):
    pid = instances_allocation.openstack_project_id
    api = bearer(instances_allocation.pi)
    body = launch_body(api, instances_allocation, "via-api")
    key = {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}

    # A launch answers 202 at once with the status resource to poll.
    first = api.post("/api/v1/instances/", body, format="json", **key)
    assert first.status_code == 202, first.content
    location = first["Location"]
    assert location == f"/api/v1/launches/{first.json()['id']}/"
    launch = poll(api, location)
    assert launch["state"] == "succeeded", launch["error"]

    # The same POST again with the same key: the same launch, no second server.
    again = api.post("/api/v1/instances/", body, format="json", **key)
    assert again.status_code == 202 and again["Location"] == location and again["Idempotent-Replayed"] == "true"
    servers = nova_servers(pid)
    assert [(s.name, s.status) for s in servers] == [("via-api", "ACTIVE")]
    assert LaunchRequest.objects.count() == 1

    # The instance is in the API's list, as Nova has it.
    listed = api.get(f"/api/v1/instances/?allocation={instances_allocation.pk}").json()["results"]
    assert [(i["name"], i["server_id"], i["status"]) for i in listed] == [("via-api", servers[0].id, "ACTIVE")]
    assert launch["instances"] == [listed[0]["id"]]
    instance_url = f"/api/v1/instances/{listed[0]['id']}/"

    # Stop it through the API: 202, poll the action, SHUTOFF in Nova.
    stop = api.post(f"{instance_url}actions/", {"action": "stop"}, format="json")
    assert stop.status_code == 202, stop.content
    assert poll(api, stop["Location"])["state"] == "succeeded"
    assert connection_get(project_id=pid).compute.get_server(servers[0].id).status == "SHUTOFF"
    assert api.get(instance_url).json()["status"] == "SHUTOFF"

    # Delete it through the API: gone from Nova and from the list.
    deleted = api.delete(instance_url, **{"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())})
    assert deleted.status_code == 202, deleted.content
    assert poll(api, deleted["Location"])["state"] == "succeeded"
    wait_nova_empty(pid)  # a delete the portal saw succeed (DELETED) still takes Nova a while to finish
    assert api.get(f"/api/v1/instances/?allocation={instances_allocation.pk}").json()["results"] == []
    assert api.get(instance_url).status_code == 404


def test_a_retried_launch_after_the_worker_was_killed_still_makes_exactly_one_server(
        instances_allocation, tmp_path, settings):
    """The worker dies mid-launch; the client retries its POST with the same Idempotency-Key and
    gets the same launch; the stale-launch sweep hands it to a new worker, which finds the server
    it already made (lookup-before-create) instead of making a second."""
    from instances.services import launch_requests_resume

    queue = f"cloud.api-kill-{uuid.uuid4().hex[:6]}"
    settings.PORTAL_CLOUD_QUEUE = queue  # this launch goes to this test's own workers only
    pid = instances_allocation.openstack_project_id
    api = bearer(instances_allocation.pi)
    body = launch_body(api, instances_allocation, "survivor")
    key = {"HTTP_IDEMPOTENCY_KEY": f"kill-{uuid.uuid4()}"}
    first_worker = start_worker(tmp_path / "first.log", queue)
    try:
        first = api.post("/api/v1/instances/", body, format="json", **key)
        assert first.status_code == 202, first.content
        wait_for(lambda: LaunchRequest.objects.get(pk=first.json()["id"]).server_ids, timeout=60, interval=0.02,
                 message="the server to be created")
        os.kill(first_worker.pid, signal.SIGSTOP)  # freeze it at once (the server needs ~1 s to go ACTIVE)...
        os.kill(first_worker.pid, signal.SIGKILL)  # ...then kill it, as a lost machine would
    finally:
        first_worker.kill()
        first_worker.wait(timeout=10)
    assert api.get(first["Location"]).json()["state"] not in FINAL  # it really died mid-flight

    # The client, having seen nothing final, retries: the same launch, not a new one.
    retry = api.post("/api/v1/instances/", body, format="json", **key)
    assert retry.status_code == 202 and retry.json()["id"] == first.json()["id"]
    assert retry["Idempotent-Replayed"] == "true"

    second_worker = start_worker(tmp_path / "second.log", queue)
    try:
        assert launch_requests_resume(stale_seconds=0) == 1  # what the beat sweep does after a while
        launch = poll(api, first["Location"])
    finally:
        second_worker.terminate()
        second_worker.wait(timeout=20)
    assert launch["state"] == "succeeded", launch["error"]
    assert [s.name for s in nova_servers(pid)] == ["survivor"]
    assert api.post("/api/v1/instances/", body, format="json", **key).json()["id"] == launch["id"]
    assert LaunchRequest.objects.count() == 1


def test_a_launch_the_balance_cannot_carry_is_402_with_the_shortfall(instances_allocation):
    pid = instances_allocation.openstack_project_id
    LedgerEntry.objects.create(allocation=instances_allocation, kind="usage", sus=Decimal("-9990"),
                               note="nearly spent")
    api = bearer(instances_allocation.pi)

    response = api.post("/api/v1/instances/", launch_body(api, instances_allocation, "too-dear"), format="json")

    assert response.status_code == 402 and response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/api/problems/insufficient-balance" and problem["status"] == 402
    assert Decimal(problem["shortfall_sus"]) > 0 and "SUs short" in problem["detail"]
    assert not LaunchRequest.objects.exists() and nova_servers(pid) == []


@pytest.fixture
def three_projects(devcloud, transactional_db):
    """Person A with allocations X and Y, person B with allocation Z, each a real project holding
    one server (made with the SDK, mirrored by a sync)."""
    a, b = UserFactory(), UserFactory()
    made = []
    try:
        for owner, title in ((a, "X"), (a, "Y"), (b, "Z")):
            allocation = provision_directly(pi=owner, kind="research_cpu", title=f"API matrix {title}")
            made.append(allocation)
            conn = connection_get(project_id=allocation.openstack_project_id)
            conn.compute.create_server(
                name=f"server-{title.lower()}", flavor_id=conn.compute.find_flavor("m3.tiny", ignore_missing=False).id,
                image_id=conn.image.find_image("Featured-Ubuntu24", ignore_missing=False).id, networks="none")
        def mirrored(allocation) -> bool:
            project_sync(allocation=allocation)
            return allocation.instances.exists()

        for allocation in made:
            wait_for(lambda allocation=allocation: mirrored(allocation), timeout=60,
                     message=f"the server of {allocation.title} in the mirror")
        yield a, b, *made
    finally:
        for allocation in made:
            remove_directly(allocation)


def test_the_authorization_matrix_with_real_projects(three_projects, celery_worker_process):
    a, b, x, y, z = three_projects
    servers_before = {al.pk: [s.id for s in nova_servers(al.openstack_project_id)] for al in (x, y, z)}
    inst = {al: Instance.objects.get(allocation=al) for al in (x, y, z)}

    def reaches_nothing(client, allocation, why: str):
        """Every read and every write about the allocation's things is a 404, as for an unknown id."""
        i = inst[allocation]
        for method, url, data in [
                ("get", f"/api/v1/allocations/{allocation.pk}/", None),
                ("get", f"/api/v1/allocations/{allocation.pk}/ledger/", None),
                ("get", f"/api/v1/allocations/{allocation.pk}/members/", None),
                ("get", f"/api/v1/flavors/?allocation={allocation.pk}", None),
                ("get", f"/api/v1/images/?allocation={allocation.pk}", None),
                ("get", f"/api/v1/instances/?allocation={allocation.pk}", None),
                ("get", f"/api/v1/security-groups/?allocation={allocation.pk}", None),
                ("get", f"/api/v1/floating-ips/?allocation={allocation.pk}", None),
                ("get", f"/api/v1/instances/{i.pk}/", None),
                ("post", f"/api/v1/instances/{i.pk}/actions/", {"action": "stop"}),
                ("delete", f"/api/v1/instances/{i.pk}/", None),
                ("post", "/api/v1/instances/", {"allocation": allocation.pk, "name": "intruder",
                                                "flavor": "any", "image": "any"}),
                ("post", "/api/v1/volumes/", {"allocation": allocation.pk, "name": "intruder", "size_gb": 1}),
                ("post", "/api/v1/floating-ips/", {"allocation": allocation.pk}),
                ("post", f"/api/v1/security-groups/?allocation={allocation.pk}", {"name": "intruder"})]:
            response = getattr(client, method)(url, data, format="json")
            assert response.status_code == 404, f"{why}: {method.upper()} {url}: {response.status_code}"
            assert response["Content-Type"] == "application/problem+json"

    # A token of person A reaches nothing of person B's.
    a_all = bearer(a)
    reaches_nothing(a_all, z, "A's token, B's allocation")
    assert {al["id"] for al in a_all.get("/api/v1/allocations/").json()} == {x.pk, y.pk}
    assert {i["name"] for i in a_all.get("/api/v1/instances/").json()["results"]} == {"server-x", "server-y"}

    # A token of A limited to X reaches nothing of A's own Y.
    a_x = bearer(a, allocation=x)
    reaches_nothing(a_x, y, "A's token for X, A's allocation Y")
    assert [al["id"] for al in a_x.get("/api/v1/allocations/").json()] == [x.pk]
    assert [i["name"] for i in a_x.get("/api/v1/instances/").json()["results"]] == ["server-x"]
    assert a_x.get(f"/api/v1/instances/{inst[x].pk}/").status_code == 200

    # A read-only token reads, and every write is 403.
    a_read = bearer(a, scope="read")
    assert a_read.get(f"/api/v1/instances/{inst[x].pk}/").status_code == 200
    for method, url, data in [
            ("post", f"/api/v1/instances/{inst[x].pk}/actions/", {"action": "stop"}),
            ("delete", f"/api/v1/instances/{inst[x].pk}/", None),
            ("post", "/api/v1/instances/", launch_body(a_all, x, "read-only")),
            ("post", "/api/v1/keys/", {"name": "k", "public_key": "ssh-ed25519 AAAA"}),
            ("post", "/api/v1/floating-ips/", {"allocation": x.pk})]:
        response = getattr(a_read, method)(url, data, format="json")
        assert response.status_code == 403, f"read-only {method.upper()} {url}: {response.status_code}"

    # A revoked or an expired token is 401.
    revoked_row, revoked = token_create(user=a, name="revoked", scope="write", expires_in_days=1)
    expired_row, expired = token_create(user=a, name="expired", scope="write", expires_in_days=1)
    token_revoke(token=revoked_row)
    ApiToken.objects.filter(pk=expired_row.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    for raw in (revoked, expired):
        response = APIClient().get("/api/v1/allocations/", HTTP_AUTHORIZATION=f"Bearer {raw}")
        assert response.status_code == 401 and response["Content-Type"] == "application/problem+json"

    # Nothing was asked of the cloud, and nothing changed in any of the three projects.
    assert not LaunchRequest.objects.exists() and not CloudAction.objects.exists()
    assert {al.pk: [s.id for s in nova_servers(al.openstack_project_id)] for al in (x, y, z)} == servers_before
    assert all(s.status != "SHUTOFF" for al in (x, y, z) for s in nova_servers(al.openstack_project_id))


def test_the_terraform_starter_signs_in_and_names_what_the_project_has(instances_allocation):
    """main.tf from the Credentials page, checked against the real cloud: its provider settings
    sign in as the project, and the flavor, image and external network it names exist there."""
    import hcl2
    import openstack

    from allocations import credentials

    pi = instances_allocation.pi
    row, secret = credentials.credential_create(user=pi, allocation=instances_allocation, name="terraform",
                                                expires_in_days=1)
    starter = credentials.terraform_choices_or_blank(user=pi, allocation=instances_allocation)
    token = credentials.credential_download_tokens_issue(credential=row, secret=secret, terraform=starter)["main.tf"]
    parsed = hcl2.loads(credentials.credential_download_redeem(token=token, user=pi).body)

    def value(text):
        return text[1:-1] if isinstance(text, str) and text.startswith('"') else text

    provider = {k: value(v) for k, v in parsed["provider"][0]['"openstack"'].items()}
    variables = {value(name): value(body.get("default"))
                 for block in parsed["variable"] for name, body in block.items()}
    conn = openstack.connection.Connection(
        auth_type="v3applicationcredential", region_name=provider.get("region"), interface="public",
        auth={"auth_url": provider["auth_url"], "application_credential_id": provider["application_credential_id"],
              "application_credential_secret": provider["application_credential_secret"]})
    try:
        assert conn.current_project_id == instances_allocation.openstack_project_id
        flavors = {f.name: f for f in conn.compute.flavors()}
        m3 = [f for name, f in flavors.items() if name.startswith("m3.")]
        assert variables["flavor_name"] == min(m3, key=lambda f: (f.vcpus, f.ram, f.disk)).name
        image = conn.image.find_image(variables["image_name"], ignore_missing=False)
        assert image.name.startswith("Featured-") and image.visibility == "public"
        network = conn.network.find_network(variables["external_network"], ignore_missing=False)
        assert network.is_router_external
    finally:
        conn.close()
        credentials.credential_delete(credential=row)
