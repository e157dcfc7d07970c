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
