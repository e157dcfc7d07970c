"""Writes to status rows. Every state change goes through here and is checked."""
from __future__ import annotations

import uuid
from datetime import timedelta
from typing import TypeVar

from django.db import transaction
from django.utils import timezone

from .models import Operation, OperationState, StatusRow

Row = TypeVar("Row", bound=StatusRow)


class InvalidTransition(Exception):
    """A status row was asked to move to a state it cannot reach from where it is."""


def operation_create(*, kind: str, target: str = "", params: dict | None = None, user=None) -> Operation:
    return Operation.objects.create(kind=kind, target=target, params=params or {}, requested_by=user)


def status_row_enqueue(*, row: Row, task, args: tuple = (), queue: str | None = None) -> Row:
    """Send `task` once the surrounding transaction commits, recording its id on the row.

    The task id is chosen here, so the row knows it even if the worker starts first.
    """
    task_id = str(uuid.uuid4())
    type(row).objects.filter(pk=row.pk).update(celery_task_id=task_id)
    row.celery_task_id = task_id
    options = {"task_id": task_id}
    if queue:
        options["queue"] = queue
    transaction.on_commit(lambda: task.apply_async(args=args or (row.pk,), **options))
    return row


def _transition(row: Row, state: str, **fields) -> Row:
    with transaction.atomic():
        locked = type(row).objects.select_for_update().get(pk=row.pk)
        if not locked.can_move_to(state):
            raise InvalidTransition(f"{type(row).__name__} {row.pk} is {locked.state}, cannot become {state}")
        locked.state = state
        for name, value in fields.items():
            setattr(locked, name, value)
        locked.save()
    return locked


def status_row_start(*, row: Row, step: str = "") -> Row:
    """Mark the row running; a redelivered task restarting a running row counts an attempt."""
    fields = {"step": step, "attempts": row.attempts + 1}
    if row.started_at is None:
        fields["started_at"] = timezone.now()
    return _transition(row, OperationState.RUNNING, **fields)


def status_row_progress(*, row: Row, step: str, progress: int | None = None) -> Row:
    fields = {"step": step}
    if progress is not None:
        fields["progress"] = max(0, min(100, progress))
    return _transition(row, OperationState.RUNNING, **fields)


def status_row_succeed(*, row: Row, step: str = "done", **extra) -> Row:
    return _transition(row, OperationState.SUCCEEDED, step=step, progress=100, error="",
                       finished_at=timezone.now(), **extra)


def status_row_fail(*, row: Row, error: str, step: str = "failed") -> Row:
    return _transition(row, OperationState.FAILED, step=step, error=error, finished_at=timezone.now())


def status_row_cancel(*, row: Row) -> Row:
    return _transition(row, OperationState.CANCELLED, step="cancelled", finished_at=timezone.now())


def operations_fail_stale(*, deadline_seconds: int, limit: int = 500) -> int:
    """Fail operations left running past their deadline (a worker died, a cloud hung)."""
    cutoff = timezone.now() - timedelta(seconds=deadline_seconds)
    stale = list(
        Operation.objects.filter(state=OperationState.RUNNING, updated_at__lt=cutoff)
        .order_by("updated_at")
        .values_list("pk", flat=True)[:limit]
    )
    failed = 0
    for pk in stale:
        row = Operation.objects.get(pk=pk)
        try:
            status_row_fail(row=row, error="The operation did not finish in time and was stopped.")
            failed += 1
        except InvalidTransition:
            continue
    return failed
