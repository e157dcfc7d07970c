"""Writes to status rows. Every state change goes through here and is checked."""
from __future__ import annotations

import logging
import os
import re
import uuid
from datetime import timedelta
from typing import TypeVar
from urllib.parse import urlsplit

from django.apps import apps
from django.db import transaction
from django.db.models.functions import Coalesce
from django.utils import timezone

from .models import Operation, OperationState, StatusRow

logger = logging.getLogger(__name__)

Row = TypeVar("Row", bound=StatusRow)


class InvalidTransition(Exception):
    """A status row was asked to move to a state it cannot reach from where it is."""


def operation_create(*, kind: str, target: str = "", params: dict | None = None, user=None) -> Operation:
    return Operation.objects.create(kind=kind, target=target, params=params or {}, requested_by=user)


def status_row_enqueue(*, row: Row, task, args: tuple = (), queue: str | None = None,
                       countdown: float | None = None) -> Row:
    """Send `task` once the surrounding transaction commits, recording its id on the row.

    The task id is chosen here, so the row knows it even if the worker starts first; a message
    carrying another id is superseded (portal.runner). `countdown`: deliver it that many seconds later.
    """
    task_id = str(uuid.uuid4())
    type(row).objects.filter(pk=row.pk).update(celery_task_id=task_id)
    row.celery_task_id = task_id
    options = {"task_id": task_id}
    if queue:
        options["queue"] = queue
    if countdown:
        options["countdown"] = countdown
    transaction.on_commit(lambda: task.apply_async(args=args or (row.pk,), **options))
    return row


def status_rows_enqueue_made(*, rows: list, task, queue: str | None = None) -> list:
    """status_row_enqueue for rows made together (bulk_create) that already carry the task id
    their message will have (`celery_task_id`, chosen before they were saved): no UPDATE each."""
    for row in rows:
        options = {"task_id": row.celery_task_id, **({"queue": queue} if queue else {})}
        transaction.on_commit(lambda row=row, options=options: task.apply_async(args=(row.pk,), **options))
    return rows


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


# --- "The cloud did not answer": the retry step every task shows ------------------------------

# The catalog's service types, as the step names them ("Identity unavailable").
CLOUD_SERVICE_WORDS = {"identity": "Identity", "compute": "Compute", "network": "Network", "volumev3": "Block storage",
                       "volume": "Block storage", "block-storage": "Block storage", "image": "Image",
                       "placement": "Placement", "orchestration": "Orchestration"}
_URL = re.compile(r"https?://[^\s'\"<>]+")


def status_row_retrying(*, row: Row, attempt: int, attempts: int, exc: Exception) -> Row:
    """Say on the row that the cloud did not answer and when the task tries again:
    "retrying (3/8): Identity unavailable"."""
    step = f"retrying ({attempt}/{attempts}): {cloud_unavailable_words(exc)}"
    return _transition(row, OperationState.RUNNING, step=step[:StatusRow._meta.get_field("step").max_length])


def cloud_unavailable_words(exc: Exception) -> str:
    """Which of the cloud's services did not answer, as far as the error tells: "Compute unavailable".

    The address that failed is in the SDK's error (or its message); the catalog says whose it is.
    When the catalog cannot be read either, Keystone (which serves it) is what is down.
    """
    service = getattr(exc, "service", "") or _service_at(_failed_url(exc))
    return f"{CLOUD_SERVICE_WORDS.get(service, 'Cloud')} unavailable"


def _failed_url(exc: BaseException) -> str:
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        for text in (getattr(exc, "url", None), getattr(exc, "detail", None), str(exc)):
            found = _URL.search(text or "")
            if found:
                return found.group(0).rstrip(".,:;)")
        exc = exc.__cause__ or exc.__context__
    return ""


def _service_at(url: str) -> str:
    if not url:
        return ""
    from portal.cloud import identity
    from portal.cloud.errors import CloudError

    try:
        catalog = identity.catalog_list(timeout=5)
    except CloudError:
        return "identity"
    target = urlsplit(url)
    best, best_score = "", -1
    for entry in catalog:
        endpoint = urlsplit(entry.url)
        if endpoint.netloc == target.netloc:
            score = len(os.path.commonprefix([target.path, endpoint.path]))
            if score > best_score:
                best, best_score = entry.type, score
    return best


STALE_ERROR = ("This did not finish within {minutes} minutes and was stopped (the work on it was probably "
               "interrupted). Anything it already made in the cloud still shows in your lists. Please try again, "
               "and tell the support team if it happens again.")


def status_row_models() -> list[type[StatusRow]]:
    """Every concrete kind of status row, so the sweep covers a new kind without being told."""
    return [
        model for model in apps.get_models()
        if issubclass(model, StatusRow) and not model._meta.proxy
        # A multi-table child shares its parent's row, which the parent's sweep already covers.
        and not any(issubclass(parent, StatusRow) for parent in model._meta.parents)
    ]


def status_rows_fail_stale(*, deadline_seconds: int, limit: int = 500) -> int:
    """Fail rows of every kind left queued or running for longer than the deadline.

    The clock starts when the work started (or, still queued, when it was asked for), not at the
    last update: a resumer that only touches a row (instances' launch resume) must not keep it
    alive forever, while the deadline, far past any launch's or action's own, leaves those
    resumers and the tasks' own timeouts to act first. Up to `limit` rows of each kind per run;
    rows a worker holds locked are skipped.
    """
    cutoff = timezone.now() - timedelta(seconds=deadline_seconds)
    error = STALE_ERROR.format(minutes=max(1, deadline_seconds // 60))
    return sum(_fail_stale(model, cutoff=cutoff, error=error, limit=limit) for model in status_row_models())


def _fail_stale(model: type[StatusRow], *, cutoff, error: str, limit: int) -> int:
    failed = 0
    with transaction.atomic():
        stale = list(
            model.objects.select_for_update(skip_locked=True)
            .annotate(clock=Coalesce("started_at", "created_at"))
            .filter(state__in=[OperationState.QUEUED, OperationState.RUNNING], clock__lt=cutoff)
            .order_by("clock")[:limit]
        )
        for row in stale:
            try:
                status_row_fail(row=row, error=error, step="timed out")
            except InvalidTransition:
                continue
            failed += 1
    if failed:
        logger.warning("failed %d stale %s row(s)", failed, model._meta.label)
    return failed
