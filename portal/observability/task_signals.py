"""Celery signals: the request id travels with a task; run times and outcomes are recorded, and
the observers the apps register for a task (`portal.registry.add_task_observer`) are told.

A task enqueued while a request (or another task) is in hand carries its request id in the
message headers (`before_task_publish`); the worker puts it back in the contextvar for the task's
run (`task_prerun`), so the task's log lines and the cloud calls it makes carry the request that
caused it. A task run eagerly inside a request simply keeps the request's id.
"""
from __future__ import annotations

import contextlib
import logging
import time

from celery import signals
from celery.utils.log import ColorFormatter

from .. import registry
from . import metrics
from .context import RequestIdFilter, request_id, sane_request_id

HEADER = "portal_request_id"

# task id -> (start, the contextvar token to reset); prerun and postrun run in the same thread.
_running: dict[str, tuple[float, object]] = {}


@signals.before_task_publish.connect(weak=False, dispatch_uid="portal.observability.publish")
def _carry_request_id(sender=None, headers=None, **kwargs):
    ours = request_id.get()
    if ours and headers is not None:
        headers.setdefault(HEADER, ours)


def _request_id_of(task) -> str:
    request = getattr(task, "request", None)
    found = getattr(request, HEADER, None) or (getattr(request, "headers", None) or {}).get(HEADER)
    return sane_request_id(found)


@signals.task_prerun.connect(weak=False, dispatch_uid="portal.observability.prerun")
def _task_started(sender=None, task_id=None, task=None, **kwargs):
    carried = _request_id_of(task)
    _running[task_id] = (time.perf_counter(), request_id.set(carried) if carried else None)


@signals.task_postrun.connect(weak=False, dispatch_uid="portal.observability.postrun")
def _task_finished(sender=None, task_id=None, task=None, state=None, **kwargs):
    started, token = _running.pop(task_id, (None, None))
    if token is not None:
        with contextlib.suppress(ValueError):  # set in another context: nothing of ours to undo
            request_id.reset(token)
    if started is None:
        return
    elapsed, name = time.perf_counter() - started, getattr(task, "name", None) or str(sender)
    metrics.task_seconds.labels(name, state or "UNKNOWN").observe(elapsed)
    for observe in registry.task_observers(name):
        observe(state=state or "UNKNOWN", seconds=elapsed)


@signals.task_failure.connect(weak=False, dispatch_uid="portal.observability.failure")
def _task_failed(sender=None, exception=None, **kwargs):
    metrics.task_failures.labels(getattr(sender, "name", str(sender)), type(exception).__name__).inc()


def _with_request_id(logger=None, format=None, colorize=False, **kwargs):
    """The worker's log handlers (Celery replaces Django's LOGGING there) also show the request id."""
    if not logger or not format or "%(request_id)" in format:
        return
    shown = format.replace("%(message)s", "[%(request_id)s] %(message)s")
    for handler in logger.handlers:
        handler.addFilter(RequestIdFilter())
        kind = type(handler.formatter)
        handler.setFormatter(kind(shown, use_color=colorize) if issubclass(kind, ColorFormatter)
                             else logging.Formatter(shown))


signals.after_setup_logger.connect(_with_request_id, weak=False, dispatch_uid="portal.observability.log")
signals.after_setup_task_logger.connect(_with_request_id, weak=False, dispatch_uid="portal.observability.tasklog")
