from datetime import timedelta

import pytest
from django.utils import timezone

from portal import services
from portal.models import Operation, OperationState

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


def test_sweep_fails_only_operations_stuck_past_the_deadline():
    stuck = services.status_row_start(row=services.operation_create(kind="stuck"))
    fresh = services.status_row_start(row=services.operation_create(kind="fresh"))
    Operation.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - timedelta(hours=2))

    assert services.operations_fail_stale(deadline_seconds=3600) == 1

    stuck.refresh_from_db(); fresh.refresh_from_db()
    assert stuck.state == "failed" and "did not finish in time" in stuck.error
    assert fresh.state == "running"


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
