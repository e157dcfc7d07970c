import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from instances.models import CloudAction, LaunchRequest
from portal import services, tasks
from portal.models import Operation, OperationState, StatusRow

pytestmark = pytest.mark.django_db


def test_operation_moves_queued_running_succeeded_and_records_times():
    op = services.operation_create(kind="cloud.check")
    assert op.state == OperationState.QUEUED

    op = services.status_row_start(row=op, step="authenticating")
    op = services.status_row_progress(row=op, step="asking nova", progress=50)
    assert (op.state, op.step, op.progress, op.attempts) == ("running", "asking nova", 50, 1)

    op = services.status_row_succeed(row=op, result={"ok": True})
    op.refresh_from_db()
    assert op.state == OperationState.SUCCEEDED and op.progress == 100 and op.result == {"ok": True}
    assert op.started_at <= op.finished_at


def test_finished_operation_refuses_to_run_again():
    op = services.operation_create(kind="cloud.check")
    op = services.status_row_fail(row=op, error="The cloud is not answering right now.")

    with pytest.raises(services.InvalidTransition):
        services.status_row_start(row=op)
    op.refresh_from_db()
    assert op.state == "failed" and op.error == "The cloud is not answering right now."


def test_redelivered_task_restarting_a_running_row_counts_an_attempt():
    op = services.status_row_start(row=services.operation_create(kind="x"))
    op = services.status_row_start(row=op)
    assert op.attempts == 2 and op.state == "running"


def _age(row, *, hours: float, started: bool = True) -> None:
    """Make a row look as if it was asked for (and started) `hours` ago."""
    then = timezone.now() - timedelta(hours=hours)
    type(row).objects.filter(pk=row.pk).update(created_at=then, updated_at=then,
                                               **({"started_at": then} if started else {}))


def _launch(allocation, user, **fields) -> LaunchRequest:
    return LaunchRequest.objects.create(allocation=allocation, project_id="proj-1", requested_by=user, name="vm",
                                        flavor_id="f-1", flavor_name="m3.small", image_id="img-1", **fields)


def _action(allocation, user, target_id: str, **fields) -> CloudAction:
    return CloudAction.objects.create(allocation=allocation, project_id="proj-1", requested_by=user,
                                      target_id=target_id, action="reboot", **fields)


def test_sweep_fails_only_operations_stuck_past_the_deadline():
    stuck = services.status_row_start(row=services.operation_create(kind="stuck"))
    fresh = services.status_row_start(row=services.operation_create(kind="fresh"))
    _age(stuck, hours=2)

    assert services.status_rows_fail_stale(deadline_seconds=3600) == 1

    stuck.refresh_from_db()
    fresh.refresh_from_db()
    assert stuck.state == "failed" and stuck.step == "timed out"
    assert "did not finish within 60 minutes" in stuck.error and "try again" in stuck.error
    assert fresh.state == "running"


def test_sweep_covers_every_kind_of_status_row():
    kinds = set(services.status_row_models())
    assert {Operation, LaunchRequest, CloudAction} <= kinds
    assert all(issubclass(kind, StatusRow) and not kind._meta.abstract for kind in kinds)


def test_sweep_fails_queued_and_running_rows_of_every_kind_whose_task_was_lost(allocation, user):
    # given rows of each kind stuck for two hours: one never picked up, one whose worker died
    lost_queued_action = _action(allocation, user, "server-1")
    dead_running_action = services.status_row_start(row=_action(allocation, user, "server-2"))
    lost_queued_launch = _launch(allocation, user)
    lost_operation = services.operation_create(kind="allocation.provision")
    for row in (lost_queued_action, lost_queued_launch, lost_operation):
        _age(row, hours=2, started=False)
    _age(dead_running_action, hours=2)
    finished = services.status_row_succeed(row=services.status_row_start(row=_action(allocation, user, "server-3")))
    _age(finished, hours=2)

    # when the beat task runs
    assert tasks.fail_stale_operations() == 4

    # then each is failed with words a user understands, and the finished one is left alone
    for row in (lost_queued_action, dead_running_action, lost_queued_launch, lost_operation):
        row.refresh_from_db()
        assert row.state == "failed" and row.finished_at and "was stopped" in row.error
    finished.refresh_from_db()
    assert finished.state == "succeeded" and finished.error == ""
    # a failed action frees its target for the next one (the one-open-action constraint)
    services.status_row_start(row=_action(allocation, user, "server-2"))


def test_sweep_leaves_a_recently_started_launch_to_the_resume_path(allocation, user):
    # given a launch started ten minutes ago whose worker stopped updating it an hour ago
    # (resume_stale_launches re-enqueues it; touching updated_at is how it marks the resume)
    quiet = services.status_row_start(row=_launch(allocation, user))
    LaunchRequest.objects.filter(pk=quiet.pk).update(started_at=timezone.now() - timedelta(minutes=10),
                                                     updated_at=timezone.now() - timedelta(hours=1))
    # and a launch started two hours ago that the resume path keeps touching
    resumed_forever = services.status_row_start(row=_launch(allocation, user))
    _age(resumed_forever, hours=2)
    LaunchRequest.objects.filter(pk=resumed_forever.pk).update(updated_at=timezone.now())

    assert services.status_rows_fail_stale(deadline_seconds=3600) == 1

    quiet.refresh_from_db()
    resumed_forever.refresh_from_db()
    assert quiet.state == "running"
    assert resumed_forever.state == "failed" and "60 minutes" in resumed_forever.error


def test_sweep_works_in_batches():
    rows = [services.operation_create(kind=f"lost-{i}") for i in range(3)]
    for row in rows:
        _age(row, hours=2, started=False)

    assert services.status_rows_fail_stale(deadline_seconds=3600, limit=2) == 2
    assert services.status_rows_fail_stale(deadline_seconds=3600, limit=2) == 1
    assert Operation.objects.filter(state="failed").count() == 3


@pytest.mark.django_db(transaction=True)
def test_sweep_skips_a_row_a_worker_holds_locked():
    held = services.operation_create(kind="held")
    _age(held, hours=2, started=False)
    locked, release = threading.Event(), threading.Event()

    def worker_holding_the_row():
        try:
            with transaction.atomic():
                Operation.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    worker = threading.Thread(target=worker_holding_the_row)
    worker.start()
    assert locked.wait(10)
    try:
        assert services.status_rows_fail_stale(deadline_seconds=3600) == 0
    finally:
        release.set()
        worker.join()
    assert services.status_rows_fail_stale(deadline_seconds=3600) == 1


def test_enqueue_sends_the_task_only_after_commit(django_capture_on_commit_callbacks):
    sent = []

    class FakeTask:
        def apply_async(self, args, **options):
            sent.append((args, options))

    op = services.operation_create(kind="cloud.check")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.status_row_enqueue(row=op, task=FakeTask())
    assert sent == [] and len(callbacks) == 1

    callbacks[0]()
    op.refresh_from_db()
    assert sent == [((op.pk,), {"task_id": op.celery_task_id})]
