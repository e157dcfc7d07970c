"""Reads for the stack pages: a person's stacks (the mirror), the library, and one stack's live
state read from Heat as the person (events and resources while it builds)."""
from __future__ import annotations

from django.http import Http404

from allocations.scopes import NoCloudAccess, member_scope
from allocations.selectors import allocation_list_for_user
from instances.models import Instance
from portal.cloud import orchestration
from portal.cloud.errors import CloudError, NotFound

from .models import Stack, StackTemplate

SERVER = "OS::Nova::Server"


def stack_list_for_user(*, user, allocation=None):
    """The live stacks of the person's allocations (made in the portal or with the CLI)."""
    qs = Stack.objects.filter(allocation__in=allocation_list_for_user(user=user), deleted_at=None)
    if allocation is not None:
        qs = qs.filter(allocation=allocation)
    return qs.select_related("allocation", "created_by").order_by("-created_at")


def stack_get_for_user(*, user, pk: int) -> Stack:
    stack = (Stack.objects.filter(pk=pk, allocation__in=allocation_list_for_user(user=user))
             .select_related("allocation", "created_by").first())
    if stack is None:
        raise Http404("No such stack.")
    return stack


def template_library() -> list[StackTemplate]:
    return list(StackTemplate.objects.all())


def _live(user, stack: Stack) -> dict:
    """Heat's own view of the stack now, as the person: status, outputs, events, resources."""
    if not stack.stack_id or stack.deleted_at:
        return {}
    try:
        scope = member_scope(user=user, allocation=stack.allocation)
        heat = orchestration.stack_get(scope=scope, stack_id=stack.stack_id)
        return {"heat": heat,
                "events": orchestration.stack_events(scope=scope, stack_id=heat.id, stack_name=heat.name),
                "resources": orchestration.stack_resources(scope=scope, stack_id=heat.id, stack_name=heat.name)}
    except NotFound:
        return {"cloud_error": "Heat no longer has this stack."}
    except (CloudError, NoCloudAccess) as exc:
        return {"cloud_error": str(exc)}


def _shown(value) -> str:
    """An output's value as a person reads it: a list one item after another, a mapping as JSON."""
    import json

    if isinstance(value, list):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return "" if value is None else str(value)


def stack_page(*, user, stack: Stack) -> dict:
    """What the stack page shows and polls while Heat works: status, events, resources (servers linked
    to their instance pages), outputs, and the portal's own operation on it."""
    op = stack.operations.select_related("requested_by").first()
    live = _live(user, stack)
    heat = live.get("heat")
    status = heat.status if heat else stack.status
    reason = heat.status_reason if heat else stack.status_reason
    resources = sorted(live.get("resources") or [], key=lambda r: r.logical_name)
    servers = [r.physical_id for r in resources if r.type == SERVER and r.physical_id]
    instances = {i.server_id: i for i in Instance.objects.filter(server_id__in=servers, deleted_at__isnull=True)}
    outputs = ([{"key": o.key, "value": o.value, "description": o.description, "error": o.error}
                for o in heat.outputs] if heat else stack.outputs)
    outputs = [{**o, "shown": _shown(o.get("value"))} for o in outputs]
    building = bool(op and not op.is_final) or (stack.deleted_at is None and (
        status.endswith("_IN_PROGRESS") or (not status and not stack.made_in_portal)))
    return {
        "stack": stack, "operation": op, "status": status or "requested", "status_reason": reason,
        "events": live.get("events") or [], "resources": [(r, instances.get(r.physical_id)) for r in resources],
        "outputs": outputs, "cloud_error": live.get("cloud_error", ""), "in_flux": building,
        "deleted": stack.deleted_at is not None,
        # Heat is still working (the portal's own check may lag Heat's word by a few seconds)
        "heat_busy": building and (not status or status.endswith("_IN_PROGRESS")),
    }
