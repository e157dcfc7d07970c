"""Observability (issue 12): /metrics for Prometheus only, the portal's own metrics, request ids in logs.

The cloud's instrumentation point is the keystoneauth session of each gateway connection: unit
tests fake the cloud behind a real keystoneauth Session (a requests transport adapter), and the
integration tests make real calls to the local cloud. Views used only here live in this module's
URLconf (`pytest.mark.urls(__name__)`).
"""
from __future__ import annotations

import io
import logging
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
import redis
import requests
from celery import shared_task
from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpResponse
from django.urls import path
from django.utils import timezone
from keystoneauth1 import session as ks_session
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from allocations.models import AllocationStatus
from instances.metrics import mirror_sync_lag
from instances.models import ProjectSync
from portal.celery import app as celery_app
from portal.cloud.errors import CloudUnavailable, NotFound, cloud_errors
from portal.observability import RequestIdFilter, instrument_session
from portal.observability.collectors import celery_queue_names
from portal.observability.context import new_request_id, using_request_id
from tests.fixtures.allocations import make_allocation
from tests.integration.conftest import devcloud  # noqa: F401 - the real local cloud, for the integration tests

log = logging.getLogger(__name__)
REQUEST_ID = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def scrape(client, **extra) -> dict:
    """/metrics parsed: {family name: {labels as a sorted tuple: value}} (samples of the family's own name)."""
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.status_code
    return {family.name: {tuple(sorted(s.labels.items())): s.value for s in family.samples
                          if s.name in (family.name, family.name + "_total")}
            for family in text_string_to_metric_families(response.content.decode())}


@pytest.fixture
def console():
    """What the console handler configured by settings.LOGGING writes, while the test runs."""
    handler = next(h for h in logging.getLogger().handlers if any(isinstance(f, RequestIdFilter) for f in h.filters))
    buffer = io.StringIO()
    old = handler.setStream(buffer)
    yield buffer
    handler.setStream(old)


# --- /metrics: who may scrape it ----------------------------------------------------------------


@pytest.mark.django_db
def test_metrics_answers_loopback_with_the_portals_metrics(client):
    families = scrape(client)
    for name in ("portal_cloud_request_seconds", "portal_cloud_requests", "portal_cloud_errors",
                 "portal_cloud_call_seconds", "portal_celery_queue_length", "portal_celery_broker_up",
                 "portal_task_seconds", "portal_task_failures", "portal_sync_lag_seconds",
                 "portal_sync_projects_behind",
                 "portal_meter_run_seconds", "portal_meter_last_success_timestamp_seconds",
                 # django-prometheus: requests, latencies, the database
                 "django_http_requests_latency_seconds_by_view_method", "django_db_execute"):
        assert name in families, f"{name} missing from /metrics"
    assert families["portal_celery_broker_up"] == {(): 1.0}
    assert client.get("/metrics", REMOTE_ADDR="::1").status_code == 200


@pytest.mark.django_db
def test_metrics_refuses_every_other_address_signed_in_or_not(client, admin_user):
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    assert client.post("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    client.force_login(admin_user)  # a superuser is no scraper
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403
    # Through a reverse proxy on this host every visitor comes from 127.0.0.1: not trusted by address.
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert client.get("/metrics", HTTP_FORWARDED="for=203.0.113.9").status_code == 403


@pytest.mark.django_db
def test_metrics_answers_the_configured_networks_and_token_only(client, settings):
    settings.PORTAL_METRICS_ALLOWED = ["10.20.0.0/16"]
    assert client.get("/metrics", REMOTE_ADDR="10.20.3.4").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="::ffff:10.20.3.4").status_code == 200
    assert client.get("/metrics").status_code == 403  # loopback is no longer in the list
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 403  # no token set

    settings.PORTAL_METRICS_TOKEN = "s3cret-scrape-token"
    bearer = {"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-token", **bearer).status_code == 200
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-scrape-tokeN", **bearer).status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Basic s3cret-scrape-token", **bearer).status_code == 403


# --- Scrape-time metrics: Celery queues and mirror sync lag ---------------------------------------


def test_queue_names_come_from_the_celery_configuration():
    assert {"default", settings.PORTAL_CLOUD_QUEUE} <= set(celery_queue_names(celery_app))


@pytest.mark.django_db
def test_queue_length_is_read_from_redis_at_scrape_time(client, monkeypatch):
    queue = f"obs-test-{uuid.uuid4().hex[:8]}"
    routes = dict(celery_app.conf.task_routes or {}, **{"tests.obs.*": {"queue": queue}})
    monkeypatch.setitem(celery_app.conf, "task_routes", routes)
    broker = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    broker.rpush(queue, "a", "b", "c")
    broker.rpush(f"{queue}\x06\x163", "d", "e")  # kombu's list for priority 3
    try:
        lengths = scrape(client)["portal_celery_queue_length"]
    finally:
        broker.delete(queue, f"{queue}\x06\x163")
    assert lengths[(("queue", queue),)] == 5
    assert (("queue", "default"),) in lengths


@pytest.mark.django_db
def test_a_broker_that_does_not_answer_is_reported_not_fatal(client, settings):
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    families = scrape(client)
    assert families["portal_celery_broker_up"] == {(): 0.0}
    assert families["portal_celery_queue_length"] == {}


@pytest.mark.django_db
def test_sync_lag_counts_the_projects_the_sync_keeps(client, settings, django_assert_num_queries):
    settings.PORTAL_METRICS_SYNC_LAG_SECONDS = 120
    now = timezone.now()
    make_allocation(project_id="proj-fresh")
    make_allocation(project_id="proj-stale")
    make_allocation(project_id="proj-never")  # approved, never synced yet
    make_allocation(project_id="proj-closed", status=AllocationStatus.CLOSED)  # no longer synced
    ProjectSync.objects.create(project_id="proj-fresh", last_sync_at=now - timedelta(seconds=5))
    ProjectSync.objects.create(project_id="proj-stale", last_sync_at=now - timedelta(seconds=600))
    ProjectSync.objects.create(project_id="proj-closed", last_sync_at=now - timedelta(days=30))

    with django_assert_num_queries(1):
        found = mirror_sync_lag(now=now, threshold_seconds=120)
    assert (found["projects"], found["behind"]) == (3, 2)

    families = scrape(client)
    assert 600 <= families["portal_sync_lag_seconds"][()] < 700
    assert families["portal_sync_projects_behind"][()] == 2
    assert families["portal_sync_projects"][()] == 3


# --- Tasks and the meter ----------------------------------------------------------------------


@shared_task
def logged_task() -> str:
    log.info("the task ran")
    return "done"


@shared_task
def failing_task() -> None:
    raise LookupError("nothing there")


@pytest.mark.django_db
def test_task_runs_and_outcomes_are_recorded():
    name = "tests.portal.test_observability.failing_task"
    before = (value("portal_task_seconds_count", task=name, state="FAILURE"),
              value("portal_task_failures_total", task=name, exception="LookupError"))
    failing_task.apply()
    assert value("portal_task_seconds_count", task=name, state="FAILURE") == before[0] + 1
    assert value("portal_task_failures_total", task=name, exception="LookupError") == before[1] + 1


@pytest.mark.django_db
def test_meter_runs_are_timed(monkeypatch):
    from allocations import metering
    from allocations.tasks import meter_allocations

    ok = value("portal_meter_run_seconds_count", outcome="success")
    meter_allocations.apply()  # no allocations: a real run that reaches no cloud
    assert value("portal_meter_run_seconds_count", outcome="success") == ok + 1
    assert time.time() - value("portal_meter_last_success_timestamp_seconds") < 60

    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(metering, "allocations_meter", broken)
    failed = value("portal_meter_run_seconds_count", outcome="failure")
    meter_allocations.apply()
    assert value("portal_meter_run_seconds_count", outcome="failure") == failed + 1


def test_in_multiprocess_mode_metrics_shows_what_other_processes_recorded(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR shared, a worker's task metrics appear in the web's /metrics."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "DJANGO_SETTINGS_MODULE": "portal.settings.test"}
    root = Path(__file__).resolve().parents[2]

    def run(code: str) -> str:
        done = subprocess.run([sys.executable, "-c", "import django; django.setup()\n" + code], env=env, cwd=root,
                              check=False, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout

    for _ in range(2):  # two "worker" processes
        run("from tests.portal.test_observability import failing_task\nfailing_task.apply()")
    page = run("from prometheus_client import generate_latest\n"
               "from portal.observability.views import _Scrape\n"
               "print(generate_latest(_Scrape()).decode())")
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(page) for s in family.samples}
    task = (("exception", "LookupError"), ("task", "tests.portal.test_observability.failing_task"))
    assert samples[("portal_task_failures_total", task)] == 2
    assert ("portal_celery_broker_up", ()) in samples  # scrape-time metrics too


# --- The cloud gateway, faked behind a real keystoneauth session ------------------------------------


class FakeCloud(requests.adapters.BaseAdapter):
    """Answers every request with `status`, as Nova would, and remembers what was sent."""

    def __init__(self, status: int = 200, body: bytes = b'{"server": {}}'):
        super().__init__()
        self.status, self.body, self.sent = status, body, []

    def send(self, request, **kwargs):
        self.sent.append(request)
        response = requests.Response()
        response.status_code, response._content, response.url, response.request = (
            self.status, self.body, request.url, request)
        response.headers["Content-Type"] = "application/json"
        response.headers["x-openstack-request-id"] = f"req-{uuid.UUID(int=self.status)}"
        return response

    def close(self):
        pass


def fake_session(cloud: FakeCloud) -> ks_session.Session:
    session = ks_session.Session()
    session.session.mount("http://cloud.test/", cloud)
    instrument_session(session)
    return session


def server_show(session):
    """Shaped like a gateway function: the SDK's request inside cloud_errors()."""
    with cloud_errors():
        return session.request("http://cloud.test/compute/v2.1/servers/s-1", "GET", authenticated=False,
                               endpoint_filter={"service_type": "compute"})


OPERATION = "tests.portal.test_observability.server_show"


def test_a_cloud_request_is_timed_and_counted_by_service_and_gateway_function():
    cloud = FakeCloud(200)
    before = (value("portal_cloud_request_seconds_count", service="compute", operation=OPERATION),
              value("portal_cloud_requests_total", service="compute", operation=OPERATION, status="200"),
              value("portal_cloud_call_seconds_count", operation=OPERATION))
    ours = new_request_id()
    with using_request_id(ours):
        server_show(fake_session(cloud))
    assert value("portal_cloud_request_seconds_count", service="compute", operation=OPERATION) == before[0] + 1
    assert value("portal_cloud_requests_total", service="compute", operation=OPERATION, status="200") == before[1] + 1
    assert value("portal_cloud_call_seconds_count", operation=OPERATION) == before[2] + 1
    # The cloud is told our request id, to log beside its own.
    assert cloud.sent[0].headers["X-OpenStack-Request-ID"] == ours


def test_a_cloud_error_is_counted_and_logged_with_both_request_ids(console, caplog):
    caplog.set_level(logging.DEBUG, logger="portal.cloud")
    before = value("portal_cloud_errors_total", service="compute", operation=OPERATION, error="NotFound")
    ours = new_request_id()
    with using_request_id(ours), pytest.raises(NotFound) as raised:
        server_show(fake_session(FakeCloud(404, b'{"itemNotFound": {"message": "Server s-1 not found"}}')))
    theirs = raised.value.request_id
    assert theirs == f"req-{uuid.UUID(int=404)}"
    assert value("portal_cloud_errors_total", service="compute", operation=OPERATION, error="NotFound") == before + 1
    warning = next(r for r in caplog.records if r.levelno == logging.WARNING and r.name == "portal.cloud")
    assert theirs in warning.getMessage() and OPERATION in warning.getMessage()
    assert any(r.levelno == logging.DEBUG and theirs in r.getMessage() for r in caplog.records)  # per request
    line = next(line for line in console.getvalue().splitlines() if "WARNING portal.cloud" in line)
    assert f"[{ours}]" in line and theirs in line


def test_a_cloud_that_does_not_answer_is_counted_as_error():
    session = ks_session.Session()
    instrument_session(session)
    before = value("portal_cloud_requests_total", service="compute", operation=OPERATION, status="error")
    with pytest.raises(CloudUnavailable):
        server_show(session)  # nothing is mounted for cloud.test: the name does not resolve
    assert value("portal_cloud_requests_total", service="compute", operation=OPERATION, status="error") == before + 1


# --- Request ids ----------------------------------------------------------------------------------


@login_not_required
def eager_view(request):
    log.info("the view ran")
    logged_task.delay()
    return HttpResponse("ok")


@login_not_required
def enqueue_view(request):
    from portal import services, tasks

    operation = services.operation_create(kind="cloud.check")
    services.status_row_enqueue(row=operation, task=tasks.cloud_check)
    return HttpResponse(str(operation.pk))


urlpatterns = [path("obs/eager", eager_view), path("obs/enqueue", enqueue_view)]


@pytest.mark.django_db
def test_every_response_carries_a_request_id(client):
    generated = client.get("/healthz")["X-Request-ID"]
    assert REQUEST_ID.fullmatch(generated)
    assert client.get("/healthz")["X-Request-ID"] != generated
    assert client.get("/healthz", HTTP_X_REQUEST_ID="lb-7f3a:42")["X-Request-ID"] == "lb-7f3a:42"
    for insane in ("two words", "x" * 200, "line\nbreak", "<script>"):
        answered = client.get("/healthz", HTTP_X_REQUEST_ID=insane)["X-Request-ID"]
        assert REQUEST_ID.fullmatch(answered), insane


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_the_request_id_is_on_the_views_and_an_eager_tasks_log_lines(client, console, monkeypatch):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)
    before = value("portal_task_seconds_count", task="tests.portal.test_observability.logged_task", state="SUCCESS")
    ours = client.get("/obs/eager")["X-Request-ID"]
    lines = console.getvalue().splitlines()
    assert any(f"[{ours}]: the view ran" in line for line in lines), lines
    assert any(f"[{ours}]: the task ran" in line for line in lines), lines
    assert value("portal_task_seconds_count", task="tests.portal.test_observability.logged_task",
                 state="SUCCESS") == before + 1
    log.info("after the request")
    assert "[-]: after the request" in console.getvalue()


@pytest.mark.django_db
def test_a_refused_request_is_logged_with_its_id(client, console):
    ours = client.get("/metrics", REMOTE_ADDR="203.0.113.9")["X-Request-ID"]
    assert f"WARNING django.request [{ours}]: Forbidden: /metrics" in console.getvalue()


# --- Against the real local cloud and a real worker ----------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db
def test_real_cloud_calls_are_counted_per_service_and_the_cloud_logs_our_request_id(devcloud, caplog):  # noqa: F811
    from portal.cloud import compute
    from portal.cloud.connection import service_home_scope

    caplog.set_level(logging.WARNING, logger="portal.cloud")
    listed = ("compute", "compute.flavor_list")
    missing = ("compute", "compute.server_get")
    before = (value("portal_cloud_request_seconds_count", service=listed[0], operation=listed[1]),
              value("portal_cloud_requests_total", service=missing[0], operation=missing[1], status="404"),
              value("portal_cloud_errors_total", service=missing[0], operation=missing[1], error="NotFound"))
    ours = new_request_id()
    with using_request_id(ours):
        scope = service_home_scope()
        assert compute.flavor_list(scope=scope)
        with pytest.raises(NotFound) as raised:
            compute.server_get(scope=scope, server_id=str(uuid.uuid4()))

    # flavors and, on a fresh connection, Nova's version document
    assert value("portal_cloud_request_seconds_count", service=listed[0], operation=listed[1]) >= before[0] + 1
    assert value("portal_cloud_requests_total", service=missing[0], operation=missing[1], status="404") == before[1] + 1
    errors = value("portal_cloud_errors_total", service=missing[0], operation=missing[1], error="NotFound")
    assert errors == before[2] + 1
    theirs = raised.value.request_id
    assert REQUEST_ID.fullmatch(theirs) and theirs != ours
    assert any(theirs in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    nova_log = Path(settings.OS_CLIENT_CONFIG_FILE).parent / "log" / "nova-api.log"
    if nova_log.exists():  # the devcloud's: Nova logs our id as the global request id beside its own
        assert f"{ours} {theirs}" in nova_log.read_text(errors="replace")


@pytest.mark.integration
@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_a_task_a_request_enqueued_logs_that_requests_id_in_the_worker(devcloud, client,  # noqa: F811
                                                                     celery_worker_process):
    from portal.models import Operation
    from tests.fixtures.celery_worker import wait_for

    response = client.get("/obs/enqueue")
    ours, operation_id = response["X-Request-ID"], int(response.content)
    done = wait_for(lambda: Operation.objects.filter(pk=operation_id, state__in=["succeeded", "failed"]).first(),
                    timeout=60, message="the worker to run the cloud check")
    assert done.state == "succeeded", done.error
    worker_log = Path(os.readlink(f"/proc/{celery_worker_process.pid}/fd/1"))
    line = wait_for(lambda: next((line for line in worker_log.read_text(errors="replace").splitlines()
                                  if done.celery_task_id in line and "succeeded" in line), None),
                    timeout=10, message="the worker's log line of the task")
    assert f"[{ours}]" in line
