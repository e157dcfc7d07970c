"""Thin tasks: a cluster operation's passes run through portal.runner (one pass, then a re-queued
check while the row is not final; the one retry policy when the cloud does not answer)."""
from __future__ import annotations

from celery import shared_task

from portal.runner import CLOUD_TASK, CloudTask, run_pass


class OperationTask(CloudTask):
    row_model = "clusters.ClusterOperation"


@shared_task(**{**CLOUD_TASK, "base": OperationTask})
def operation_run(self, operation_id: int) -> None:
    from .operations import operation_pass

    run_pass(self, operation_id, operation_pass)


@shared_task(acks_late=True)
def resume_stale_operations() -> int:
    """Beat: re-enqueue cluster operations whose chain of passes stopped (a worker died mid-pass);
    the new message supersedes any old one still around."""
    from django.conf import settings

    from .operations import operations_resume

    return operations_resume(stale_seconds=settings.PORTAL_LAUNCH_STALE_SECONDS)
