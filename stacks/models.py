"""Heat stacks: the template library, the mirror of each project's stacks, and their resources.

A Stack row mirrors one Heat stack (made through the portal, or with the CLI and found by the sync);
the long steps the portal takes on it (create, delete) are StackOperation status rows moved by
stacks.tasks.operation_run (portal.runner). StackResource rows name what Heat made, so a server a
stack made carries the stack's badge on the instance pages.
"""
from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models

from portal.models import StatusRow

# Heat's own rule for stack names: a letter first, then letters, digits, _ - and .
NAME_VALIDATOR = RegexValidator(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$",
                                "Use up to 64 letters, digits, dashes, dots and underscores, starting with a letter.")


class StackTemplate(models.Model):
    """A template of the library the New stack page offers."""

    name = models.CharField(max_length=100, unique=True)
    description = models.TextField(blank=True)
    template = models.TextField(help_text="Heat Orchestration Template (YAML).")
    builtin = models.BooleanField(default=False, help_text="Seeded with the portal.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Stack(models.Model):
    allocation = models.ForeignKey("allocations.Allocation", on_delete=models.PROTECT, related_name="stacks")
    project_id = models.CharField(max_length=64, db_index=True)
    stack_id = models.CharField(max_length=64, blank=True, help_text="Heat's id; empty until Heat has it.")
    name = models.CharField(max_length=64, validators=[NAME_VALIDATOR])
    # Heat's word for where the stack is (CREATE_IN_PROGRESS, CREATE_COMPLETE, ...); empty before Heat has it.
    status = models.CharField(max_length=32, blank=True)
    status_reason = models.TextField(blank=True)
    outputs = models.JSONField(default=list, blank=True)
    # The values it was made with, hidden ones left out (never stored).
    parameters = models.JSONField(default=dict, blank=True)
    template = models.TextField(blank=True)
    template_name = models.CharField(max_length=100, blank=True, help_text="The library template, if one was used.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="stacks_created")
    owner = models.CharField(max_length=255, blank=True, help_text="The Keystone user Heat names as its owner.")
    made_in_portal = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["stack_id"], condition=~models.Q(stack_id=""), name="one_row_per_stack"),
            models.UniqueConstraint(fields=["project_id", "name"], condition=models.Q(deleted_at=None),
                                    name="one_live_stack_per_name"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def in_progress(self) -> bool:
        return not self.status or self.status.endswith("_IN_PROGRESS")

    @property
    def is_live(self) -> bool:
        return self.deleted_at is None


class StackResource(models.Model):
    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="resources")
    logical_name = models.CharField(max_length=255, help_text="As in the template; inside a group, group.index.")
    type = models.CharField(max_length=128)
    physical_resource_id = models.CharField(max_length=255, blank=True, db_index=True)
    status = models.CharField(max_length=32, blank=True)
    status_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["logical_name"]
        constraints = [models.UniqueConstraint(fields=["stack", "logical_name"], name="one_resource_per_name")]

    def __str__(self) -> str:
        return f"{self.stack.name}/{self.logical_name}"


class OperationKind(models.TextChoices):
    CREATE = "create", "Create"
    DELETE = "delete", "Delete"


class StackOperation(StatusRow):
    """Making or deleting a stack, followed until Heat is done (stacks.operations)."""

    stack = models.ForeignKey(Stack, on_delete=models.CASCADE, related_name="operations")
    kind = models.CharField(max_length=16, choices=OperationKind.choices)
    # The field Heat's refusal names ("flavor"), so the form shown again puts the words there.
    error_field = models.CharField(max_length=255, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["state", "updated_at"])]

    def __str__(self) -> str:
        return f"{self.stack.name} {self.kind} ({self.state})"
