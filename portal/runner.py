"""One runner for every long cloud operation: a task does one pass and returns; it never sleeps.

A pass starts the cloud call (or checks on it) and returns the status row. A row that is not final
yet is checked again by a new message with a countdown (`recheck_in`), so a worker is busy only
while it talks to the cloud, never while the cloud works; waiting costs a timer in the broker.

One retry policy everywhere (`CLOUD_TASK`): when the cloud does not answer (`CloudUnavailable`:
refused connections, timeouts, 5xx) the pass is tried again after a capped, jittered exponential
wait, up to PORTAL_CLOUD_RETRIES times, the row saying "retrying (3/8): Compute unavailable". The
last failure hands the row to the task's `give_up`, which fails it in words naming what was done
and what was left behind. Any other CloudError is the service's to turn into a failed row.

Each message carries the row's current task id: the row remembers the id of the message meant to
move it next (`status_row_enqueue`), so a superseded message (a redelivery after a worker died, a
resumer's re-enqueue racing the original) finds another id on the row and stops without acting.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from celery import Task
from django.apps import apps
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import services
from .cloud.errors import CloudUnavailable
from .models import StatusRow

log = logging.getLogger(__name__)


class CloudTask(Task):
    """A task whose first argument is a status row's id (`row_model`, "app_label.Model")."""

    row_model = ""

    def row_for(self, args) -> StatusRow | None:
        try:
            pk = int(args[0])
        except (IndexError, TypeError, ValueError):
            return None
        return apps.get_model(self.row_model).objects.filter(pk=pk).first()

    def is_superseded(self, row: StatusRow) -> bool:
        """Another message now owns the row (it was re-enqueued since this one was sent)."""
        own = self.request.id
        return bool(row.celery_task_id and own and row.celery_task_id != own)

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        row = self.row_for(args)
        if row is not None and not row.is_final:
            try:
                services.status_row_retrying(row=row, attempt=self.request.retries + 1, attempts=self.max_retries,
                                             exc=exc)
            except services.InvalidTransition:
                pass  # still queued: it never started, the next try starts it

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        row = self.row_for(args)
        if row is None or row.is_final:
            return
        try:
            self.give_up(row, exc, tries=self.request.retries + 1)
        except services.InvalidTransition:
            pass  # the stale sweep or a redelivered run finished it meanwhile
        except Exception:  # noqa: BLE001 - the failure hook must not hide the task's own error
            log.exception("%s: giving up on %s %s failed", self.name, self.row_model, row.pk)

    def give_up(self, row: StatusRow, exc: BaseException, *, tries: int) -> None:
        services.status_row_fail(row=row, error=give_up_words(row, exc, tries=tries))


def give_up_words(row: StatusRow, exc: BaseException, *, tries: int) -> str:
    """Why a task stopped trying: the cloud did not answer for so long, or something unexpected."""
    if isinstance(exc, CloudUnavailable):
        minutes = round((timezone.now() - (row.started_at or row.created_at)).total_seconds() / 60)
        return (f"The cloud did not answer ({services.cloud_unavailable_words(exc)}); gave up after {tries} "
                f"tries over {max(1, minutes)} minute{'s' if minutes > 1 else ''}.")
    return "An unexpected error stopped it (the portal's log has the details)."


# The options every cloud task shares: the one retry policy, and the message acknowledged only once
# the pass is done (a worker that dies mid-pass leaves it to be delivered again).
CLOUD_TASK = dict(base=CloudTask, bind=True, acks_late=True, reject_on_worker_lost=True,
                  autoretry_for=(CloudUnavailable,), max_retries=settings.PORTAL_CLOUD_RETRIES,
                  retry_backoff=settings.PORTAL_CLOUD_RETRY_BACKOFF,
                  retry_backoff_max=settings.PORTAL_CLOUD_RETRY_BACKOFF_MAX, retry_jitter=True)


def recheck_in(row: StatusRow) -> float:
    """Seconds until the next check of an operation in flight: soon at first, then less often
    (most servers are ACTIVE within seconds; a slow one is checked every PORTAL_RECHECK_MAX)."""
    started = row.started_at or row.created_at
    elapsed = (timezone.now() - started).total_seconds() if started else 0
    return max(settings.PORTAL_RECHECK_MIN, min(settings.PORTAL_RECHECK_MAX, elapsed / 4))


def region_queue(region: str, kind: str = "cloud") -> str:
    """The Celery queue of a region's cloud work (`kind` "cloud") or mirror sync ("sync"): the
    primary's ("" region) are PORTAL_CLOUD_QUEUE and PORTAL_SYNC_QUEUE, another region's
    "<kind>.<PORTAL_REGION_QUEUE_PREFIX><region>", so a slow or down region holds up only its own."""
    if not region:
        return settings.PORTAL_SYNC_QUEUE if kind == "sync" else settings.PORTAL_CLOUD_QUEUE
    return f"{kind}.{settings.PORTAL_REGION_QUEUE_PREFIX}{region}"


def stale_rows_resume(model, *, stale_seconds: int, limit: int, task_for: Callable) -> int:
    """Hand rows of a long operation whose chain of passes stopped to a new message (`task_for(row)`
    is the task): queued or running, untouched for `stale_seconds` (every pass touches its row; a
    worker that died mid-pass leaves it). A row waiting out a retry's backoff gets that long too.
    The new message supersedes any old one still around."""
    now = timezone.now()
    retry_cutoff = now - timedelta(seconds=stale_seconds + settings.PORTAL_CLOUD_RETRY_BACKOFF_MAX)
    stale = model.objects.filter(state__in=["queued", "running"], updated_at__lt=now - timedelta(seconds=stale_seconds))
    rows = list(stale.exclude(step__startswith="retrying", updated_at__gte=retry_cutoff)
                .order_by("updated_at")[:limit])
    for row in rows:
        with transaction.atomic():
            model.objects.filter(pk=row.pk).update(updated_at=timezone.now())
            services.status_row_enqueue(row=row, task=task_for(row), queue=region_queue(getattr(row, "region", "")))
    return len(rows)


def run_pass(task: CloudTask, row_id: int, one_pass: Callable[..., StatusRow], **kwargs) -> StatusRow | None:
    """Run one pass of a long operation for its task; check again later if it is not final."""
    row = task.row_for((row_id,))
    if row is None or row.is_final:
        return row
    if task.is_superseded(row):
        log.info("%s: message %s superseded by %s for %s %s", task.name, task.request.id, row.celery_task_id,
                 task.row_model, row.pk)
        return row
    row = one_pass(row_id, **kwargs)
    if not row.is_final:
        queue = (task.request.delivery_info or {}).get("routing_key") or None
        services.status_row_enqueue(row=row, task=task, args=(row.pk,), queue=queue, countdown=recheck_in(row))
    return row
