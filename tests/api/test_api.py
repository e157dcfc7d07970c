"""The API over the fake cloud (faked at the gateway): tokens, authorization, problem details,
idempotent launches, status resources, ETags."""
from decimal import Decimal

import pytest

from api.models import ApiToken
from instances.models import LaunchRequest
from instances.services import project_sync
from tests.api.conftest import bearer
from tests.instances.conftest import FLAVORS, IMAGES

pytestmark = pytest.mark.django_db


def launch_body(allocation, **kw):
    return {"allocation": allocation.pk, "name": "node", "flavor": FLAVORS[0].id, "image": IMAGES[0].id, **kw}


def test_no_token_or_a_bad_one_is_401_problem_details(client, user):
    response = client.get("/api/v1/allocations/")
    assert response.status_code == 401 and response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 401 and response["WWW-Authenticate"].startswith("Bearer")
    assert bearer("rcp_nope_nope").get("/api/v1/allocations/").status_code == 401


def test_the_token_is_stored_as_a_hash_and_expired_or_revoked_tokens_are_refused(make_token, allocation):
    row, raw = make_token()
    assert raw not in str(ApiToken.objects.values_list(flat=True)) and row.key_hash != raw
    assert bearer(raw).get("/api/v1/allocations/").status_code == 200
    ApiToken.objects.filter(pk=row.pk).update(revoked_at="2026-01-01T00:00Z")
    assert bearer(raw).get("/api/v1/allocations/").status_code == 401
    _, expired = make_token(days=1)
    ApiToken.objects.filter(prefix=expired.split("_")[1]).update(expires_at="2026-01-01T00:00Z")
    assert bearer(expired).get("/api/v1/allocations/").status_code == 401


def test_allocations_show_balance_and_only_the_users_own(api, allocation, other_allocation):
    body = api.get("/api/v1/allocations/").json()
    assert [a["title"] for a in body] == [allocation.title]
    assert Decimal(body[0]["balance_sus"]) == Decimal(10000)
    assert api.get(f"/api/v1/allocations/{other_allocation.pk}/").status_code == 404


def test_launch_answers_202_with_a_status_url_and_an_idempotent_retry_makes_one_request(
        api, cloud, allocation, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        first = api.post("/api/v1/instances/", launch_body(allocation, count=2), format="json",
                         HTTP_IDEMPOTENCY_KEY="abc-1")
        again = api.post("/api/v1/instances/", launch_body(allocation, count=2), format="json",
                         HTTP_IDEMPOTENCY_KEY="abc-1")
    assert first.status_code == again.status_code == 202
    assert first["Location"] == again["Location"] == f"/api/v1/launches/{first.json()['id']}/"
    assert again["Idempotent-Replayed"] == "true"
    assert LaunchRequest.objects.count() == 1 and len(queued) == 1
    status = api.get(first["Location"]).json()
    assert status["state"] == "queued" and status["count"] == 2
    other = api.post("/api/v1/instances/", launch_body(allocation, name="other"), format="json",
                     HTTP_IDEMPOTENCY_KEY="abc-1")
    assert other.status_code == 422 and other.json()["type"].endswith("idempotency-key-reused")


def test_a_launch_the_form_would_refuse_is_400_with_field_errors(api, cloud, allocation):
    response = api.post("/api/v1/instances/", launch_body(allocation, name="bad name!", flavor="f-nope"),
                        format="json")
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert "flavor" in errors and "name" in errors


def test_a_refused_preflight_is_402_with_the_shortfall(api, cloud, allocation):
    response = api.post("/api/v1/instances/", launch_body(allocation, flavor="f-g3-xl", count=10), format="json")
    body = response.json()
    assert response.status_code == 402 and body["type"].endswith("insufficient-balance")
    assert Decimal(body["shortfall_sus"]) > 0 and "SUs short" in body["detail"]


def test_a_read_only_token_cannot_write(make_token, cloud, allocation):
    _, raw = make_token(scope="read")
    client = bearer(raw)
    assert client.get("/api/v1/instances/").status_code == 200
    response = client.post("/api/v1/instances/", launch_body(allocation), format="json")
    assert response.status_code == 403 and not LaunchRequest.objects.exists()


def test_a_token_limited_to_one_allocation_reaches_nothing_else(make_token, cloud, allocation, user):
    from tests.fixtures.allocations import make_allocation

    second = make_allocation(pi=user, project_id="proj-3", title="Second lab")
    _, raw = make_token(allocation=allocation)
    client = bearer(raw)
    assert [a["id"] for a in client.get("/api/v1/allocations/").json()] == [allocation.pk]
    assert client.get(f"/api/v1/allocations/{second.pk}/").status_code == 404
    assert client.post("/api/v1/instances/", launch_body(second), format="json").status_code == 404


def test_instance_list_has_an_etag_and_answers_304_when_nothing_changed(api, cloud, allocation):
    cloud.add("one")
    project_sync(allocation=allocation)
    first = api.get("/api/v1/instances/")
    assert first.status_code == 200 and [i["name"] for i in first.json()["results"]] == ["one"]
    assert api.get("/api/v1/instances/", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304
    cloud.add("two")
    project_sync(allocation=allocation)
    assert api.get("/api/v1/instances/", HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 200


def test_an_action_that_does_not_apply_is_409(api, cloud, allocation):
    cloud.add("box", status="SHUTOFF")
    project_sync(allocation=allocation)
    pk = api.get("/api/v1/instances/").json()["results"][0]["id"]
    response = api.post(f"/api/v1/instances/{pk}/actions/", {"action": "stop"}, format="json")
    assert response.status_code == 409 and "not possible while the instance is shutoff" in response.json()["detail"]
    accepted = api.post(f"/api/v1/instances/{pk}/actions/", {"action": "start"}, format="json")
    assert accepted.status_code == 202 and accepted["Location"].startswith("/api/v1/actions/")


def test_the_schema_is_openapi_3_1_with_clean_operation_ids(client):
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.1")
    ids = {op["operationId"] for path in schema["paths"].values() for op in path.values() if "operationId" in op}
    assert {"instances_launch", "instances_act", "launches_retrieve", "volumes_create", "allocations_list"} <= ids


def test_a_launch_in_a_region_the_allocation_is_not_enabled_in_is_400_and_one_it_is_goes_to_that_region(
        api, cloud, allocation, monkeypatch, django_capture_on_commit_callbacks):
    from allocations.models import AllocationRegion

    monkeypatch.setattr("allocations.regions.primary_region", lambda: "RegionOne")
    refused = api.post("/api/v1/instances/", launch_body(allocation, region="RegionTwo"), format="json")
    assert refused.status_code == 400 and "region" in refused.json()["errors"]
    AllocationRegion.objects.create(allocation=allocation, region_name="RegionTwo", state="ready")
    with django_capture_on_commit_callbacks():
        made = api.post("/api/v1/instances/", launch_body(allocation, region="RegionTwo"), format="json")
    assert made.status_code == 202
    assert LaunchRequest.objects.get(pk=made.json()["id"]).region == "RegionTwo"


def test_public_ips_and_security_groups_are_listed_and_made_in_the_region_asked_for(api, allocation, monkeypatch):
    from allocations.models import AllocationRegion
    from portal.cloud import network

    monkeypatch.setattr("allocations.regions.primary_region", lambda: "RegionOne")
    regions = []
    monkeypatch.setattr(network, "floating_ip_list", lambda *, scope: regions.append(scope.region) or [])
    monkeypatch.setattr(network, "security_group_list", lambda *, scope: regions.append(scope.region) or [])
    refused = api.post("/api/v1/floating-ips/", {"allocation": allocation.pk, "region": "RegionTwo"}, format="json")
    assert refused.status_code == 400 and "region" in refused.json()["errors"] and regions == []
    AllocationRegion.objects.create(allocation=allocation, region_name="RegionTwo", state="ready")
    assert api.get(f"/api/v1/floating-ips/?allocation={allocation.pk}&region=RegionTwo").status_code == 200
    assert api.get(f"/api/v1/security-groups/?allocation={allocation.pk}").status_code == 200
    assert regions == ["RegionTwo", ""]
