"""Writes: reading a template as the person, the cost and the refusals before Heat is called,
making and deleting a stack (status rows run by stacks.tasks), and the mirror of each project's stacks.

A stack is made and deleted as the person who asks, with their own Keystone identity scoped to the
allocation's project; the sync reads as the portal's service user. Hidden parameter values go to
Heat and nowhere else: between the page and the task they wait in the cache, encrypted, for an hour
at most, and are dropped once Heat has them.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from allocations.charging import family_rates_all, su_per_hour
from allocations.scopes import NoCloudAccess, member_scope
from portal import crypto
from portal.cloud import orchestration
from portal.cloud.errors import BadRequest, CloudError
from portal.services import status_row_enqueue

from .models import OperationKind, Stack, StackOperation, StackResource
from .templating import Needs, template_needs, template_parse

logger = logging.getLogger(__name__)
OPEN = ("queued", "running")
VALIDATE_CACHE_SECONDS = 600
HIDDEN_SECONDS = 3600
TAG_PREFIX = "portal-op-"
# Heat's words when a value breaks a parameter's constraint (stack create or preview answer 400).
PARAMETER_REFUSAL = re.compile(r"Parameter '(?P<name>[^']+)' is invalid: (?P<words>.+)", re.S)


def parameter_refusal(exc: CloudError) -> tuple[str, str] | None:
    """(parameter, Heat's words) when Heat refused a parameter's value, else None."""
    m = PARAMETER_REFUSAL.search(exc.detail or str(exc))
    return (m["name"], m["words"].strip()) if m else None


def template_read(*, user, allocation, text: str) -> tuple[dict, orchestration.TemplateValidation]:
    """The template parsed (TemplateUnreadable) and Heat's reading of it as the person (BadRequest
    with Heat's words), remembered a few minutes per person, project and text."""
    data = template_parse(text)
    scope = member_scope(user=user, allocation=allocation, creating=True)
    key = "stacks:validate:" + hashlib.sha256(
        f"{scope.identity.key}|{scope.project_id}|{text}".encode()).hexdigest()
    validation = cache.get(key)
    if validation is None:
        validation = orchestration.template_validate(scope=scope, template=text)
        cache.set(key, validation, VALIDATE_CACHE_SECONDS)
    return data, validation


# --- The cost preview, and the refusal before Heat is called ------------------------------------------


@dataclass(frozen=True)
class CostLine:
    flavor: str
    count: int
    vcpus: int | None  # None: a flavor the project cannot use (or not known here)
    su_per_hour: Decimal  # each

    @property
    def subtotal(self) -> Decimal:
        return self.su_per_hour * self.count


@dataclass(frozen=True)
class StackCost:
    lines: tuple[CostLine, ...]
    needs: Needs
    ram_mb: int
    gpus: int

    @property
    def per_hour(self) -> Decimal:
        return sum((line.subtotal for line in self.lines), Decimal(0))

    @property
    def per_day(self) -> Decimal:
        return self.per_hour * 24

    @property
    def unknown(self) -> list[CostLine]:
        return [line for line in self.lines if line.vcpus is None]

    @property
    def vcpus(self) -> int:
        return sum((line.vcpus or 0) * line.count for line in self.lines)


def stack_cost(*, flavors, data: dict, values: dict) -> StackCost:
    """SU/hour of the servers the template makes with these values, by the launch page's rules
    (allocations.charging.su_per_hour); `flavors` are those the project may boot."""
    needs = template_needs(data, values)
    by_name = {f.name: f for f in flavors}
    rates = family_rates_all()
    lines, ram, gpus = [], 0, 0
    for name, count in sorted(needs.servers.items()):
        flavor = by_name.get(name)
        if flavor is None:
            lines.append(CostLine(name or "unknown flavor", count, None, Decimal(0)))
            continue
        lines.append(CostLine(name, count, flavor.vcpus,
                              su_per_hour(flavor_name=name, vcpus=flavor.vcpus, family_rates=rates)))
        ram += flavor.ram_mb * count
        gpus += flavor.vgpus * count
    return StackCost(lines=tuple(lines), needs=needs, ram_mb=ram, gpus=gpus)


def _n(value) -> str:
    return f"{value:,}"


def stack_refusals(*, allocation, cost: StackCost, quota) -> list[str]:
    """Why the allocation cannot carry the stack's servers, in words (empty: it can): its state,
    its balance for the minimum runway (PORTAL_MIN_RUNWAY_HOURS, as a launch), the project's quota."""
    if not allocation.is_usable:
        return [f"The allocation “{allocation.title}” is {allocation.get_status_display().lower()}"
                f"{' and disabled' if allocation.disabled_at else ''}: no new instances can be started in it."]
    reasons = [f"The project cannot boot {line.flavor} ({line.count} server{'s' if line.count > 1 else ''} "
               "of the template ask for it)." for line in cost.unknown if line.flavor != "unknown flavor"]
    hours = settings.PORTAL_MIN_RUNWAY_HOURS
    needed, balance = cost.per_hour * hours, allocation.balance()
    if needed > balance:
        reasons.append(
            f"Not enough SUs: the stack's servers cost {cost.per_hour:.2f} SU/hour, so {hours} hours need "
            f"{needed:,.2f} SUs, but the allocation has {max(balance, Decimal(0)):,.2f} left "
            f"({needed - balance:,.2f} SUs short). Ask your PI to request more SUs, or choose smaller flavors "
            "or fewer servers.")
    return reasons + _quota_refusals(cost, quota)


def _quota_refusals(cost: StackCost, quota) -> list[str]:
    if quota is None:
        return []
    servers = cost.needs.server_count
    needs = [("instances", servers, "instances", ""), ("cores", cost.vcpus, "vCPUs", ""),
             ("ram_gb", -(-cost.ram_mb // 1024), "GB of RAM", " GB"), ("gpus", cost.gpus, "GPUs", ""),
             ("volumes", cost.needs.volumes, "volumes", ""), ("volume_gb", cost.needs.volume_gb,
                                                               "GB of volume storage", " GB")]
    reasons = []
    for key, amount, words, unit in needs:
        row = quota.get(key)
        if not amount or row is None or row.free is None or amount <= row.free:
            continue
        reasons.append(f"The stack needs {_n(amount)} {words}; the project's quota has {_n(row.free)}{unit} of "
                       f"{_n(row.limit)}{unit} free.")
    return reasons


# --- Making and deleting ------------------------------------------------------------------------------


class StackRefused(Exception):
    """The portal will not ask Heat for this stack; `reasons` say why, in words."""

    def __init__(self, reasons: list[str]):
        super().__init__(" ".join(reasons))
        self.reasons = reasons


def _hidden_key(op: StackOperation) -> str:
    return f"stacks:hidden:{op.pk}:{op.idempotency_key}"


def hidden_values_take(op: StackOperation) -> dict | None:
    """The hidden values kept for the operation's create ({} when it had none; None when they are gone)."""
    stored = cache.get(_hidden_key(op))
    if stored is None:
        return None
    return json.loads(crypto.decrypt(stored))


def hidden_values_drop(op: StackOperation) -> None:
    cache.delete(_hidden_key(op))


def stack_create(*, user, allocation, name: str, template: str, template_name: str, values: dict[str, str],
                 hidden: set[str], cost: StackCost, quota) -> Stack:
    """Check, record and start making a stack as the person.

    Refused before Heat is called (StackRefused) when the allocation cannot carry its servers;
    ValidationError for a name in use, or a value Heat's preview refuses (keyed by the parameter,
    `param:<name>`, with Heat's words). Then a StackOperation makes it (stacks.tasks.operation_run)."""
    scope = member_scope(user=user, allocation=allocation, creating=True)
    if reasons := stack_refusals(allocation=allocation, cost=cost, quota=quota):
        raise StackRefused(reasons)
    if Stack.objects.filter(project_id=allocation.openstack_project_id, name=name, deleted_at=None).exists():
        raise ValidationError({"stack_name": f"The project already has a stack named “{name}”."})
    try:
        orchestration.stack_preview(scope=scope, name=name, template=template, parameters=values)
    except BadRequest as exc:
        if refused := parameter_refusal(exc):
            raise ValidationError({f"param:{refused[0]}": refused[1]}) from exc
        raise ValidationError(exc.detail or str(exc)) from exc
    with transaction.atomic():
        stack = Stack.objects.create(
            allocation=allocation, project_id=allocation.openstack_project_id, name=name, template=template,
            template_name=template_name, created_by=user, owner=scope.identity.username,
            parameters={k: v for k, v in values.items() if k not in hidden})
        op = StackOperation.objects.create(stack=stack, kind=OperationKind.CREATE, requested_by=user)
        secret = {k: v for k, v in values.items() if k in hidden}
        cache.set(_hidden_key(op), crypto.encrypt(json.dumps(secret)), HIDDEN_SECONDS)
        _enqueue(op)
    return stack


def _enqueue(op: StackOperation) -> StackOperation:
    from . import tasks

    return status_row_enqueue(row=op, task=tasks.operation_run, queue=settings.PORTAL_CLOUD_QUEUE)


def stack_delete(*, user, stack: Stack) -> StackOperation:
    """Delete the stack and everything Heat made for it, as the person; idempotent while one runs."""
    member_scope(user=user, allocation=stack.allocation)
    with transaction.atomic():
        stack = Stack.objects.select_for_update().get(pk=stack.pk)
        open_op = stack.operations.filter(state__in=OPEN).first()
        if open_op is not None and open_op.kind == OperationKind.DELETE:
            return open_op
        if stack.deleted_at is not None:
            raise ValidationError("The stack is already deleted.")
        if open_op is not None:
            raise ValidationError("The stack is still being made: delete it once Heat has finished.")
        op = StackOperation.objects.create(stack=stack, kind=OperationKind.DELETE, requested_by=user)
        return _enqueue(op)


# --- The mirror ---------------------------------------------------------------------------------------


def stack_record(*, stack: Stack, heat: orchestration.Stack) -> None:
    """Heat's view of the stack (status, reason, outputs) onto its row."""
    outputs = [{"key": o.key, "value": o.value, "description": o.description, "error": o.error}
               for o in heat.outputs]
    fields = {"status": heat.status, "status_reason": heat.status_reason, "updated_at": timezone.now()}
    if heat.outputs or not heat.in_progress:
        fields["outputs"] = outputs
    if not stack.stack_id:
        fields["stack_id"] = heat.id
    Stack.objects.filter(pk=stack.pk).update(**fields)
    for key, value in fields.items():
        setattr(stack, key, value)


def resources_record(*, stack: Stack, resources: list[orchestration.StackResource]) -> None:
    """The stack's resources as Heat lists them (one upsert; those Heat no longer lists removed)."""
    rows = [StackResource(stack=stack, logical_name=r.logical_name[:255], type=r.type[:128],
                          physical_resource_id=r.physical_id[:255], status=r.status[:32],
                          status_reason=r.status_reason) for r in resources]
    with transaction.atomic():
        StackResource.objects.filter(stack=stack).exclude(logical_name__in=[r.logical_name for r in rows]).delete()
        if rows:
            StackResource.objects.bulk_create(rows, update_conflicts=True, unique_fields=["stack", "logical_name"],
                                              update_fields=["type", "physical_resource_id", "status",
                                                             "status_reason"])


def stack_gone(*, stack: Stack) -> None:
    Stack.objects.filter(pk=stack.pk).update(deleted_at=timezone.now(), status=orchestration.GONE,
                                             updated_at=timezone.now())
    StackResource.objects.filter(stack=stack).delete()


def _owners(stacks: list[orchestration.Stack]) -> dict[str, int]:
    from allocations.models import KeystoneIdentity

    names = {s.owner for s in stacks} - {""}
    return dict(KeystoneIdentity.objects.filter(keystone_username__in=names)
                .values_list("keystone_username", "user_id"))


def stacks_sync(*, allocation) -> dict:
    """Bring the project's stacks into the mirror as the service user: stacks made with the CLI or
    Horizon appear, a changed or building stack's status, outputs and resources are read again, and
    a stack gone from Heat is marked deleted (unless the portal is still making or deleting it)."""
    from allocations.scopes import service_scope

    scope = service_scope(allocation=allocation)
    project_id = allocation.openstack_project_id
    found = [s for s in orchestration.stack_list(scope=scope) if s.status != orchestration.GONE]
    rows = {s.stack_id: s for s in Stack.objects.filter(project_id=project_id, deleted_at=None).exclude(stack_id="")}
    pending = set(Stack.objects.filter(project_id=project_id, deleted_at=None, stack_id="")
                  .values_list("name", flat=True))
    owners, read = _owners(found), 0
    with_resources = set(StackResource.objects.filter(stack__in=list(rows.values()))
                         .values_list("stack_id", flat=True).distinct())
    for heat in found:
        stack = rows.pop(heat.id, None)
        if stack is None:
            if heat.name in pending:
                continue  # the portal's own create, whose operation records it
            stack = Stack.objects.create(allocation=allocation, project_id=project_id, stack_id=heat.id,
                                         name=heat.name[:64], status=heat.status, owner=heat.owner,
                                         created_by_id=owners.get(heat.owner), made_in_portal=False)
        elif stack.status == heat.status and not heat.in_progress and stack.pk in with_resources:
            continue
        stack_record(stack=stack, heat=orchestration.stack_get(scope=scope, stack_id=heat.id))
        resources_record(stack=stack, resources=orchestration.stack_resources(
            scope=scope, stack_id=heat.id, stack_name=heat.name))
        read += 1
    busy = set(StackOperation.objects.filter(stack__in=list(rows.values()), state__in=OPEN)
               .values_list("stack_id", flat=True))
    for stack in rows.values():
        if stack.pk not in busy:
            stack_gone(stack=stack)
    return {"stacks": len(found), "read": read, "gone": len(rows) - len(busy)}


def operations_resume(*, stale_seconds: int, limit: int = 50) -> int:
    from portal.runner import stale_rows_resume

    from . import tasks

    return stale_rows_resume(StackOperation, stale_seconds=stale_seconds, limit=limit,
                             task_for=lambda row: tasks.operation_run)


__all__ = ["NoCloudAccess", "StackRefused", "stack_create", "stack_delete", "stacks_sync", "template_read"]
