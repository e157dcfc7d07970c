"""One pass of a stack's create or delete (portal.runner checks again while the row is not final).

- create: ask Heat to make the stack (once: a retried pass first looks for the stack by name and the
  operation's tag), then follow it: each pass records Heat's status, outputs and resources, until
  CREATE_COMPLETE or CREATE_FAILED. The instances mirror is asked to sync, so the servers it made
  show on the instance list.
- delete: ask Heat to delete it, then follow until Heat no longer has it (or DELETE_FAILED).
"""
from __future__ import annotations

import logging

from allocations.scopes import NoCloudAccess, member_scope
from portal.cloud import orchestration
from portal.cloud.errors import BadRequest, CloudError, CloudUnavailable, Conflict, NotFound
from portal.services import status_row_fail, status_row_progress, status_row_start, status_row_succeed

from . import services
from .models import OperationKind, Stack, StackOperation

logger = logging.getLogger(__name__)
STACK_TIMEOUT_MINUTES = 60


def operation_pass(op_id: int) -> StackOperation:
    op = StackOperation.objects.select_related("stack__allocation", "stack__created_by", "requested_by").get(pk=op_id)
    if op.is_final:
        return op
    if op.state == "queued":
        op = status_row_start(row=op, step="creating" if op.kind == OperationKind.CREATE else "deleting")
    try:
        scope = member_scope(user=op.requested_by or op.stack.created_by, allocation=op.stack.allocation)
    except NoCloudAccess as exc:
        return _fail(op, str(exc))
    try:
        if op.kind == OperationKind.CREATE:
            return _created(op, scope)
        return _deleted(op, scope)
    except CloudUnavailable:
        raise
    except CloudError as exc:
        return _fail(op, str(exc))


def _fail(op: StackOperation, error: str, *, field: str = "") -> StackOperation:
    if op.kind == OperationKind.CREATE:
        services.hidden_values_drop(op)
    if field:
        StackOperation.objects.filter(pk=op.pk).update(error_field=field)
    return status_row_fail(row=op, error=error)


def _tag(op: StackOperation) -> str:
    return f"{services.TAG_PREFIX}{op.idempotency_key}"


def _start_create(op: StackOperation, scope) -> StackOperation:
    stack = op.stack
    existing = orchestration.stack_find(scope=scope, name=stack.name)
    if existing is not None and _tag(op) not in existing.tags:
        return _fail(op, f"The project already has a stack named “{stack.name}” (made outside the portal).")
    if existing is None:
        hidden = services.hidden_values_take(op)
        if hidden is None:
            return _fail(op, "The hidden values of this stack were kept for an hour only and are gone: "
                             "start the stack again.")
        try:
            stack_id = orchestration.stack_create(
                scope=scope, name=stack.name, template=stack.template, parameters={**stack.parameters, **hidden},
                timeout_mins=STACK_TIMEOUT_MINUTES, tags=(_tag(op),))
        except (BadRequest, Conflict) as exc:
            refused = services.parameter_refusal(exc)
            if refused:
                return _fail(op, f"{refused[0]}: {refused[1]}", field=refused[0])
            return _fail(op, exc.detail or str(exc))
        existing = orchestration.stack_get(scope=scope, stack_id=stack_id)
    services.hidden_values_drop(op)
    services.stack_record(stack=stack, heat=existing)
    return status_row_progress(row=op, step="Heat is making it", progress=10)


def _created(op: StackOperation, scope) -> StackOperation:
    stack = op.stack
    if not stack.stack_id:
        return _start_create(op, scope)
    heat = orchestration.stack_get(scope=scope, stack_id=stack.stack_id)
    services.stack_record(stack=stack, heat=heat)
    resources = orchestration.stack_resources(scope=scope, stack_id=heat.id, stack_name=heat.name)
    services.resources_record(stack=stack, resources=resources)
    if heat.in_progress:
        done = sum(1 for r in resources if r.status.endswith("_COMPLETE"))
        return status_row_progress(row=op, step="Heat is making it",
                                   progress=min(95, 10 + 85 * done // max(1, len(resources))))
    _sync_instances(stack)
    if heat.status == "CREATE_COMPLETE":
        return status_row_succeed(row=op, step="complete")
    return _fail(op, heat.status_reason or f"Heat says {heat.status}.")


def _deleted(op: StackOperation, scope) -> StackOperation:
    stack = op.stack
    if not stack.stack_id:  # Heat never had it
        services.stack_gone(stack=stack)
        return status_row_succeed(row=op, step="deleted")
    if stack.status != "DELETE_IN_PROGRESS":  # not asked yet (a retried pass finds it asked)
        orchestration.stack_delete(scope=scope, stack_id=stack.stack_id)
        Stack.objects.filter(pk=stack.pk).update(status="DELETE_IN_PROGRESS", status_reason="")
        return status_row_progress(row=op, step="Heat is deleting it", progress=20)
    try:
        heat = orchestration.stack_get(scope=scope, stack_id=stack.stack_id)
    except NotFound:
        services.stack_gone(stack=stack)
        _sync_instances(stack)
        return status_row_succeed(row=op, step="deleted")
    services.stack_record(stack=stack, heat=heat)
    if heat.in_progress:
        return status_row_progress(row=op, step="Heat is deleting it", progress=50)
    return _fail(op, heat.status_reason or f"Heat says {heat.status}.")


def _sync_instances(stack: Stack) -> None:
    """The servers Heat made or deleted reach the instance list at the next sync: ask for it now."""
    from instances.tasks import sync_soon

    sync_soon([stack.allocation_id])
