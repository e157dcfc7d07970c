"""Thin tasks: load rows, call provisioning/metering/enforcement, own retries and the failure hook.

Every task that changes the cloud's admin side (a project, a member's role, quotas, flavor
access) runs for an Operation row and follows one retry policy: when the cloud does not answer
(`CloudUnavailable`: refused connections, timeouts, 5xx) it is tried again after a capped,
jittered exponential wait, up to PORTAL_CLOUD_RETRIES times, the row saying "retrying (3/8):
Identity unavailable". Only the last failure, or a refusal (any other CloudError, never retried),
fails the row, in words naming what was done and what was not.
"""
import logging

from celery import shared_task
from django.utils import timezone

from portal import services as portal_services
from portal.cloud.errors import CloudError, CloudUnavailable
from portal.models import Operation
from portal.runner import CLOUD_TASK, CloudTask

from . import enforcement, metering, provisioning
from .models import Allocation, KeystoneIdentity, Membership

log = logging.getLogger(__name__)


class OperationTask(CloudTask):
    """A task whose first argument is an Operation's id: its retries and its failure show there."""

    row_model = "portal.Operation"

    def give_up(self, row, exc, *, tries):
        portal_services.status_row_fail(row=row, error=failure_words(row, exc, tries=tries))


# portal.runner's one retry policy; these tasks take no `self`.
CLOUD_RETRY = {**CLOUD_TASK, "base": OperationTask, "bind": False}


def _operation(args) -> Operation | None:
    try:
        return Operation.objects.filter(pk=int(args[0])).first()
    except (IndexError, TypeError, ValueError):
        return None


def _allocation(operation: Operation) -> Allocation:
    return Allocation.objects.get(pk=int(operation.target.split(":", 1)[1]))


def _run(operation_id: int, kind: str, work) -> None:
    operation = _operation((operation_id,))
    if operation is not None and operation.kind != kind:
        # A message from before these tasks took an operation's id (a membership's, an allocation's)
        log.warning("%s: operation %s is a %s, not a %s; skipped", work.__name__, operation_id, operation.kind, kind)
        return
    if operation is not None and not operation.is_final:
        work(operation=operation)


@shared_task(**CLOUD_RETRY)
def provision_allocation(operation_id: int) -> None:
    _run(operation_id, "allocation.provision", provisioning.allocation_provision)


@shared_task(**CLOUD_RETRY)
def close_allocation(operation_id: int) -> None:
    _run(operation_id, "allocation.close", provisioning.allocation_close_project)


def _grant(*, operation: Operation) -> None:
    operation = portal_services.status_row_start(row=operation, step="granting the member role")
    membership = (Membership.objects.select_related("allocation", "user")
                  .filter(pk=operation.params.get("membership_id")).first())
    if membership is None:  # removed again before this ran; its revoke has a row of its own
        portal_services.status_row_succeed(row=operation, step="no longer a member")
        return
    provisioning.membership_grant(membership=membership)
    portal_services.status_row_succeed(row=operation)


def _revoke(*, operation: Operation) -> None:
    operation = portal_services.status_row_start(row=operation, step="removing the member's roles")
    allocation, user_id = _allocation(operation), operation.params.get("user_id")
    if allocation.memberships.filter(user_id=user_id).exists():  # added back since: keep the role
        portal_services.status_row_succeed(row=operation, step="a member again")
        return
    provisioning.membership_revoke(project_id=allocation.openstack_project_id, user_id=user_id)
    portal_services.status_row_succeed(row=operation)


def _restore(*, operation: Operation) -> None:
    operation = portal_services.status_row_start(row=operation, step="restoring quotas")
    provisioning.allocation_restore_quotas(allocation=_allocation(operation))
    portal_services.status_row_succeed(row=operation)


def _flavor_access(*, operation: Operation) -> None:
    operation = portal_services.status_row_start(row=operation, step="updating flavor access")
    done = provisioning.allocation_flavor_access_sync(allocation=_allocation(operation))
    portal_services.status_row_succeed(row=operation, result=done)


@shared_task(**CLOUD_RETRY)
def provision_region(operation_id: int) -> None:
    """Quotas in a region an admin enabled for the allocation; then the region is offered on its pages."""
    _run(operation_id, "allocation.region", provisioning.allocation_region_provision)


@shared_task(**CLOUD_RETRY)
def grant_membership(operation_id: int) -> None:
    _run(operation_id, "membership.grant", _grant)


@shared_task(**CLOUD_RETRY)
def revoke_membership(operation_id: int) -> None:
    _run(operation_id, "membership.revoke", _revoke)


@shared_task(**CLOUD_RETRY)
def restore_quotas(operation_id: int) -> None:
    _run(operation_id, "allocation.restore_quotas", _restore)


@shared_task(**CLOUD_RETRY)
def sync_flavor_access(operation_id: int) -> None:
    """Open the private flavors the allocation's kind allows to its project, close the others."""
    _run(operation_id, "allocation.flavor_access", _flavor_access)


@shared_task(acks_late=True)
def refresh_regions() -> list[str]:
    """Beat: the regions of Keystone's catalog (a region added to the cloud shows up by itself)."""
    from .regions import regions_refresh

    try:
        return [c.region_name for c in regions_refresh()]
    except CloudError as exc:
        log.warning("refreshing the regions failed: %s", exc)
        return []


@shared_task(acks_late=True)
def meter_allocations() -> int:
    """Beat: meter the primary region here, and each other region in a task on that region's own
    queue, so a slow or down region holds up only its own charges."""
    from portal.runner import region_queue

    from .regions import region_list

    for region in region_list():
        if region.key:
            meter_region.apply_async((region.key,), queue=region_queue(region.key))
    return metering.allocations_meter(now=timezone.now(), region="")


@shared_task(acks_late=True)
def meter_region(region: str) -> int:
    return metering.allocations_meter(now=timezone.now(), region=region)


@shared_task(acks_late=True)
def enforce_allocations() -> dict:
    return enforcement.allocations_enforce(now=timezone.now())


# --- The final failure, in words -------------------------------------------------------------

# provisioning's steps in order: (step, done, not done)
PROVISION_STEPS = [("creating project", "the project exists", "the project"),
                   ("setting quotas", "its quotas are set", "its quotas"),
                   ("opening flavors", "its flavors are open", "its flavors"),
                   ("granting roles", "", "the members' roles")]
CLOSE_STEPS = [("disabling project", "the project is disabled", "disabling the project"),
               ("removing roles", "", "removing the members' roles")]


def failure_words(row: Operation, exc: BaseException, *, tries: int) -> str:
    """Why the operation stopped, then what it did and did not do."""
    if isinstance(exc, CloudUnavailable):
        minutes = (timezone.now() - (row.started_at or row.created_at)).total_seconds() / 60
        why = (f"The cloud did not answer ({portal_services.cloud_unavailable_words(exc)}); gave up after "
               f"{tries} tries over {max(1, round(minutes))} minute{'s' if round(minutes) > 1 else ''}.")
    elif isinstance(exc, CloudError):
        why = f"The cloud refused it: {str(exc).rstrip('.')}."
    else:
        why = "An unexpected error stopped it (the portal's log has the details)."
    outcome = OUTCOMES.get(row.kind)
    return f"{why} {outcome(row)}" if outcome else why


def _steps_outcome(row: Operation, steps, tail: str) -> str:
    names = [name for name, _, _ in steps]
    reached = names.index(row.step) if row.step in names else 0
    done = [words for _, words, _ in steps[:reached] if words]
    missing = [words for _, _, words in steps[reached:]]
    said = f"Done: {'; '.join(done)}." if done else "Nothing was changed in the cloud."
    return f"{said} Not done: {', '.join(missing)}; {tail}"


def _member(row: Operation) -> str:
    return row.params.get("email") or "the member"


def _grant_outcome(row: Operation) -> str:
    has_user = KeystoneIdentity.objects.filter(user_id=row.params.get("user_id")).exists()
    return (f"Done: {_member(row)} is a member in the portal{' and has an OpenStack user' if has_user else ''}. "
            f"Not done: {'' if has_user else 'their OpenStack user and '}the member role on the project, so they "
            "cannot use it yet; removing and adding them again tries again.")


OUTCOMES = {
    "allocation.provision": lambda row: _steps_outcome(
        row, PROVISION_STEPS, "the allocation stays approved until they are (Retry provisioning in admin runs "
        "the rest)."),
    "allocation.close": lambda row: _steps_outcome(
        row, CLOSE_STEPS, "the allocation is closed in the portal all the same."),
    "membership.grant": _grant_outcome,
    "membership.revoke": lambda row: (
        f"Done: {_member(row)} is no longer a member in the portal. Not done: their role on the project in "
        "OpenStack was not removed, so they can still reach the project with their own credentials; adding and "
        "removing them again tries again."),
    "allocation.restore_quotas": lambda row: (
        "Done: the allocation is active again in the portal. Not done: the project's quotas in OpenStack were "
        "not restored, so the cloud still refuses new servers there; tell the support team."),
    "allocation.flavor_access": lambda row: (
        f"Not done: the project's private flavors were not brought in line with the rule for "
        f"{row.params.get('kind', 'its kind').replace('_', ' ')} allocations, so some may still be open or closed; "
        "saving the rule again in admin tries again."),
}
