"""The runner for long cloud operations (portal.runner), through the instance tasks, with the cloud
faked at the gateway: one pass per message, waiting as a re-queued check, never a sleeping worker;
a superseded message does nothing; one retry policy whose last failure names what is left."""
import time

import pytest
from django.conf import settings

from instances import tasks
from instances.models import CloudAction, LaunchRequest
from instances.services import instance_act
from portal.cloud import compute
from portal.cloud.errors import CloudUnavailable
from portal.cloud.identity import CatalogService
from tests.instances.test_launch import make_request

pytestmark = pytest.mark.django_db

NOVA_DOWN = CloudUnavailable(detail="Unable to establish connection to http://10.0.0.5:8774/v2.1/servers")


@pytest.fixture
def sent(monkeypatch):
    """Messages the tasks send (a re-queued check), instead of a broker."""
    messages = []

    def apply_async(self, args=(), **options):
        messages.append((self.name, args, options))

    monkeypatch.setattr("celery.app.task.Task.apply_async", apply_async)
    return messages


@pytest.fixture(autouse=True)
def no_sleeping(monkeypatch):
    def sleep(seconds):
        raise AssertionError(f"a worker slept {seconds}s waiting on the cloud")

    monkeypatch.setattr(time, "sleep", sleep)


@pytest.fixture(autouse=True)
def catalog(monkeypatch):
    monkeypatch.setattr("portal.cloud.identity.catalog_list", lambda **kw: [
        CatalogService("compute", "nova", "RegionOne", "http://10.0.0.5:8774/v2.1")])


@pytest.fixture
def run(django_capture_on_commit_callbacks):
    def deliver(task, row):
        """Deliver the row's current message once, as a worker would (eagerly, in this process); what
        it sends on commit is sent."""
        row.refresh_from_db()
        with django_capture_on_commit_callbacks(execute=True):
            return task.apply(args=(row.pk,), task_id=row.celery_task_id or "first", throw=False)
    return deliver


def test_a_building_launch_returns_and_is_checked_again_later_by_a_new_message(cloud, allocation, user, sent, run):
    cloud.build_status = "BUILD"
    row = make_request(allocation, user, count=2, network_id="net-1")
    run(tasks.launch_provision, row)
    row.refresh_from_db()
    assert row.state == "running" and row.step == "building" and len(row.server_ids) == 2
    [(name, args, options)] = sent
    assert name == "instances.tasks.launch_provision" and args == (row.pk,)
    assert settings.PORTAL_RECHECK_MIN <= options["countdown"] <= settings.PORTAL_RECHECK_MAX
    assert options["task_id"] == row.celery_task_id  # the row knows which message moves it next

    cloud.build_status = "ACTIVE"
    run(tasks.launch_provision, row)  # the check
    row.refresh_from_db()
    assert row.state == "succeeded" and cloud.calls["server_create"] == 2 and len(sent) == 1


def test_a_superseded_message_does_nothing(cloud, allocation, user, sent, run):
    row = make_request(allocation, user, network_id="net-1")
    LaunchRequest.objects.filter(pk=row.pk).update(celery_task_id="the-current-one")
    tasks.launch_provision.apply(args=(row.pk,), task_id="an-old-redelivery")
    row.refresh_from_db()
    assert row.state == "queued" and cloud.calls["server_create"] == 0 and not sent


def test_a_cloud_that_stops_answering_is_retried_then_the_row_names_what_is_left(cloud, allocation, user, sent, run,
                                                                                  monkeypatch):
    cloud.build_status = "BUILD"
    row = make_request(allocation, user, network_id="net-1")
    run(tasks.launch_provision, row)  # the server is made and building
    steps = []
    real_list = compute.server_list

    def nova_down(**kwargs):
        raise NOVA_DOWN

    monkeypatch.setattr(compute, "server_list", nova_down)
    original = LaunchRequest.save

    def record(self, *args, **kwargs):
        steps.append(self.step)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(LaunchRequest, "save", record)
    run(tasks.launch_provision, row)
    row.refresh_from_db()
    tries = settings.PORTAL_CLOUD_RETRIES
    assert f"retrying (1/{tries}): Compute unavailable" in steps
    assert f"retrying ({tries}/{tries}): Compute unavailable" in steps
    assert row.state == "failed"
    assert row.error.startswith(f"The cloud did not answer (Compute unavailable); gave up after {tries + 1} tries")
    assert "Left in the cloud: 1 instance (node" in row.error  # cleaning up needed Nova too
    monkeypatch.setattr(compute, "server_list", real_list)


def test_an_action_is_called_once_then_only_checked(cloud, allocation, user, sent, run, monkeypatch):
    server = cloud.add("vm", project_id="proj-1")
    from instances.services import instances_upsert

    instances_upsert(allocation=allocation, servers=[server], scope=None)
    from instances.models import Instance

    instance = Instance.objects.get(server_id=server.id)
    real_action = cloud.server_action

    def slow_stop(*, scope, server_id, action):  # Nova takes its time: still ACTIVE, task "powering-off"
        cloud.calls[f"action:{action}"] += 1
        cloud.set(server_id, task_state="powering-off")

    monkeypatch.setattr(compute, "server_action", slow_stop)
    row = instance_act(user=user, instance=instance, action="stop")
    run(tasks.action_run, row)
    row.refresh_from_db()
    assert row.state == "running" and len(sent) == 1
    run(tasks.action_run, row)  # still stopping: checked, not called again
    assert cloud.calls["action:stop"] == 1 and len(sent) == 2

    cloud.set(server.id, status="SHUTOFF", task_state="")
    run(tasks.action_run, row)
    row.refresh_from_db()
    assert row.state == "succeeded" and cloud.calls["action:stop"] == 1
    assert CloudAction.objects.get(pk=row.pk).progress == 100
    monkeypatch.setattr(compute, "server_action", real_action)


def test_a_launch_whose_worker_died_is_handed_to_a_new_message_unless_it_waits_out_a_retry(
        cloud, allocation, user, sent, django_capture_on_commit_callbacks):
    from datetime import timedelta

    from django.utils import timezone

    from instances.services import launch_requests_resume

    died = make_request(allocation, user, name="died", state="running", step="building", celery_task_id="old")
    waits = make_request(allocation, user, name="waits", state="running", step="retrying (2/8): Compute unavailable",
                         celery_task_id="old-2")
    LaunchRequest.objects.filter(pk__in=[died.pk, waits.pk]).update(updated_at=timezone.now() - timedelta(seconds=200))
    with django_capture_on_commit_callbacks(execute=True):
        assert launch_requests_resume(stale_seconds=120) == 1
    died.refresh_from_db()
    [(name, args, options)] = sent
    assert args == (died.pk,) and options["task_id"] == died.celery_task_id != "old"  # the old message is superseded
