"""What the schemathesis run found, pinned: bad ids, cursors, parameters and bodies are 4xx
problem details (never a 500 or an ignored value), actions are checked against the list of
actions, a volume attaches only to an instance of its project, idempotency keys expire."""
import subprocess
import sys
from datetime import timedelta

import pytest
from django.utils import timezone

from api.models import IdempotentRequest
from instances.models import CloudAction, Volume
from instances.services import project_sync
from tests.instances.conftest import FLAVORS, IMAGES

pytestmark = pytest.mark.django_db


def problem(response, status: int) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status and body["type"].startswith("/api/problems/")
    return body


@pytest.mark.parametrize("path", ["/api/v1/instances/-1/", "/api/v1/instances/abc/", "/api/v1/nothing-here/",
                                  "/api/v1/instances/9223372036854775808/", "/api/v1/volumes/0/actions/"])
def test_an_id_that_names_no_row_or_an_unknown_url_is_a_404_problem(api, path):
    problem(api.get(path), 404)


def test_an_anonymous_call_to_an_unknown_url_is_still_401(client):
    problem(client.get("/api/v1/nothing-here/"), 401)


@pytest.mark.parametrize("query", ["page_size=0", "page_size=501", "page_size=ten", "cursor=bm9wZQ",
                                   "cursor=cD1hYmM%3D", "allocation=abc", "allocation=0", "mine=perhaps",
                                   "q=" + "x" * 101])
def test_a_bad_query_parameter_is_a_400_naming_it(api, allocation, query):
    body = problem(api.get(f"/api/v1/instances/?{query}"), 400)
    assert query.split("=")[0] in body["errors"]


def test_a_list_needing_an_allocation_says_so(api, cloud, allocation):
    assert "allocation" in problem(api.get("/api/v1/flavors/"), 400)["errors"]
    assert api.get(f"/api/v1/flavors/?allocation={allocation.pk}").status_code == 200


@pytest.mark.parametrize("payload", [[], "text", 3, None])
def test_a_body_that_is_not_a_json_object_is_a_400(api, cloud, allocation, payload):
    import json

    for path in ("/api/v1/instances/", "/api/v1/keys/", f"/api/v1/security-groups/?allocation={allocation.pk}"):
        problem(api.post(path, json.dumps(payload), content_type="application/json"), 400)


def test_an_unknown_action_is_a_400_and_resize_needs_a_flavor(api, cloud, allocation):
    cloud.add("box")
    project_sync(allocation=allocation)
    pk = allocation.instances.get().pk
    body = problem(api.post(f"/api/v1/instances/{pk}/actions/", {"action": "explode"}, format="json"), 400)
    assert "action" in body["errors"]
    body = problem(api.post(f"/api/v1/instances/{pk}/actions/", {"action": "resize"}, format="json"), 400)
    assert "flavor_id" in body["errors"] and not CloudAction.objects.exists()


def test_a_volume_attaches_only_to_a_live_instance_of_its_own_project(api, cloud, allocation, other_allocation):
    mine, theirs = cloud.add("mine"), cloud.add("theirs", project_id="proj-2")
    project_sync(allocation=allocation)
    project_sync(allocation=other_allocation)
    volume = Volume.objects.create(allocation=allocation, project_id="proj-1", volume_id="vol-1", name="data",
                                   size_gb=10, status="available")
    url = f"/api/v1/volumes/{volume.pk}/actions/"
    assert "server_id" in problem(api.post(url, {"action": "attach"}, format="json"), 400)["errors"]
    assert "server_id" in problem(api.post(url, {"action": "attach", "server_id": theirs.id}, format="json"),
                                  400)["errors"]
    assert "size_gb" in problem(api.post(url, {"action": "extend"}, format="json"), 400)["errors"]
    assert not CloudAction.objects.exists()
    accepted = api.post(url, {"action": "attach", "server_id": mine.id}, format="json")
    assert accepted.status_code == 202 and CloudAction.objects.get().params == {"server_id": mine.id}


def test_a_blank_idempotency_key_is_refused(api, cloud, allocation):
    body = {"allocation": allocation.pk, "name": "node", "flavor": FLAVORS[0].id, "image": IMAGES[0].id}
    problem(api.post("/api/v1/instances/", body, format="json", HTTP_IDEMPOTENCY_KEY=""), 400)
    problem(api.post("/api/v1/instances/", body, format="json", HTTP_IDEMPOTENCY_KEY="k" * 256), 400)


def test_idempotency_keys_are_kept_a_day_then_pruned_and_free_again(api, cloud, allocation, user,
                                                                    django_capture_on_commit_callbacks):
    body = {"allocation": allocation.pk, "name": "node", "flavor": FLAVORS[0].id, "image": IMAGES[0].id}
    stale = IdempotentRequest.objects.create(user=user, key="old-other", fingerprint="x", status_code=202)
    first = api.post("/api/v1/instances/", body, format="json", HTTP_IDEMPOTENCY_KEY="day-1")
    IdempotentRequest.objects.filter(pk=stale.pk).update(created_at=timezone.now() - timedelta(hours=25))
    IdempotentRequest.objects.filter(key="day-1").update(created_at=timezone.now() - timedelta(hours=25))

    again = api.post("/api/v1/instances/", body, format="json", HTTP_IDEMPOTENCY_KEY="day-1")

    assert first.status_code == again.status_code == 202
    assert first.json()["id"] != again.json()["id"] and "Idempotent-Replayed" not in again
    assert list(IdempotentRequest.objects.values_list("key", flat=True)) == ["day-1"]  # the stale one pruned


def test_a_failed_request_does_not_keep_its_key(api, cloud, allocation):
    bad = {"allocation": allocation.pk, "name": "bad name", "flavor": FLAVORS[0].id, "image": IMAGES[0].id}
    assert api.post("/api/v1/instances/", bad, format="json", HTTP_IDEMPOTENCY_KEY="k1").status_code == 400
    assert not IdempotentRequest.objects.exists()
    good = {**bad, "name": "node"}
    assert api.post("/api/v1/instances/", good, format="json", HTTP_IDEMPOTENCY_KEY="k1").status_code == 202


def test_the_schema_documents_every_error_as_problem_details(client):
    schema = client.get("/api/schema/?format=json").json()
    launch = schema["paths"]["/api/v1/instances/"]["post"]
    for code in ("400", "401", "402", "403", "404", "409", "422", "429", "503"):
        content = launch["responses"][code]["content"]
        assert list(content) == ["application/problem+json"], code
        assert content["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert launch["responses"]["202"]["headers"]["Location"]["required"] is True
    assert {"name": "Idempotency-Key", "in": "header"}.items() <= launch["parameters"][0].items()
    detail = schema["paths"]["/api/v1/instances/{id}/"]["get"]["parameters"][0]["schema"]
    assert detail == {"type": "integer", "minimum": 1, "maximum": 2**63 - 1}
    assert schema["components"]["schemas"]["ActionInputRequest"]["properties"]["action"]["$ref"].endswith("Enum")
    listing = schema["paths"]["/api/v1/instances/"]["get"]["responses"]
    assert "304" in listing and "ETag" in listing["200"]["headers"]


def test_api_common_imports_first_without_a_cycle():
    """DRF's settings import api.common (the throttle) while rest_framework.views loads."""
    code = "import django; django.setup(); import api.common; import api.urls"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "portal.settings.test"})
    assert result.returncode == 0, result.stderr[-2000:]


def test_a_deleted_instance_or_volume_is_404_like_in_the_list(api, cloud, allocation):
    cloud.add("gone")
    project_sync(allocation=allocation)
    instance = allocation.instances.get()
    volume = Volume.objects.create(allocation=allocation, project_id="proj-1", volume_id="vol-9", name="old",
                                   size_gb=1, status="available", deleted_at=timezone.now())
    type(instance).objects.filter(pk=instance.pk).update(deleted_at=timezone.now())
    problem(api.get(f"/api/v1/instances/{instance.pk}/"), 404)
    problem(api.delete(f"/api/v1/instances/{instance.pk}/"), 404)
    problem(api.get(f"/api/v1/volumes/{volume.pk}/"), 404)


def test_the_bearer_scheme_is_case_insensitive(make_token, allocation):
    from rest_framework.test import APIClient

    _, raw = make_token()
    assert APIClient().get("/api/v1/allocations/", HTTP_AUTHORIZATION=f"bearer {raw}").status_code == 200
    assert APIClient().get("/api/v1/allocations/", HTTP_AUTHORIZATION=f"BEARER {raw}").status_code == 200
