"""The foundation against real services: healthz and a status row run by a real Celery worker."""
import pytest

from portal import services, tasks
from portal.models import Operation
from tests.fixtures.celery_worker import wait_for

pytestmark = pytest.mark.integration


@pytest.mark.django_db
def test_healthz_is_ok_against_the_real_database_redis_and_cloud(devcloud, client):
    response = client.get("/healthz")
    assert response.status_code == 200, response.json()
    assert response.json()["cloud"] == "ok"


@pytest.mark.django_db(transaction=True)
def test_a_worker_runs_a_queued_cloud_check_to_success(devcloud, celery_worker_process):
    operation = services.operation_create(kind="cloud.check")
    services.status_row_enqueue(row=operation, task=tasks.cloud_check)  # autocommit: sent at once

    done = wait_for(lambda: Operation.objects.filter(pk=operation.pk, state__in=["succeeded", "failed"]).first(),
                    timeout=60, message="the worker to finish the cloud check")
    assert done.state == "succeeded", done.error
    assert {"compute", "identity", "image", "network"} <= set(done.result["services"])
    assert done.celery_task_id and done.attempts == 1
