"""The status row every long operation reuses.

A launch, an action on a server, an allocation's provisioning: each is a row that a Celery
worker moves through a small state machine. The row, not the Celery result, is the source of
truth the pages show, and its allowed transitions are what make retries and double clicks safe.
"""
import uuid

from django.conf import settings
from django.db import models


class OperationState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINAL_STATES = frozenset({OperationState.SUCCEEDED, OperationState.FAILED, OperationState.CANCELLED})

# state -> states it may move to. RUNNING -> RUNNING is a progress update or a redelivered task.
TRANSITIONS = {
    OperationState.QUEUED: {OperationState.RUNNING, OperationState.FAILED, OperationState.CANCELLED},
    OperationState.RUNNING: {OperationState.RUNNING, OperationState.SUCCEEDED, OperationState.FAILED},
    OperationState.SUCCEEDED: set(),
    OperationState.FAILED: set(),
    OperationState.CANCELLED: set(),
}


class StatusRow(models.Model):
    """Abstract base for any model that tracks a long-running operation."""

    state = models.CharField(
        max_length=16, choices=OperationState.choices, default=OperationState.QUEUED, db_index=True
    )
    # A short word for where the work is ("creating", "building"), shown beside the state.
    step = models.CharField(max_length=64, blank=True)
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done, 0-100.")
    error = models.TextField(blank=True, help_text="What went wrong, in words a user understands.")
    celery_task_id = models.CharField(max_length=64, blank=True, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    # Sent to the cloud with every create so a retried task finds what it already made.
    idempotency_key = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True

    @property
    def is_final(self) -> bool:
        return self.state in FINAL_STATES

    def can_move_to(self, state: str) -> bool:
        return state in TRANSITIONS[OperationState(self.state)]


class Operation(StatusRow):
    """A long operation that has no richer model of its own (checks, admin jobs, ...)."""

    kind = models.CharField(max_length=64, db_index=True)
    target = models.CharField(max_length=255, blank=True, help_text="What it acts on, e.g. server:<id>.")
    params = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "updated_at"])]

    def __str__(self) -> str:
        return f"{self.kind} {self.target} ({self.state})".strip()
