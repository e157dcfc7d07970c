"""Writes about allocations: requests, review decisions, membership.

Anything that must reach Keystone is done by a task (see provisioning.py), enqueued on commit.
"""
from __future__ import annotations

import re
import secrets
from datetime import date
from decimal import Decimal

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.text import slugify

from portal import services as portal_services
from portal.cloud.errors import CloudError

from . import notifications
from .models import Allocation, AllocationStatus, LedgerEntry, LedgerKind, Membership, MembershipRole

REVIEWABLE = (AllocationStatus.REQUESTED, AllocationStatus.UNDER_REVIEW)
RUNNING = (AllocationStatus.ACTIVE, AllocationStatus.EXHAUSTED, AllocationStatus.EXPIRED)

# Control characters (C0, DEL, C1), line and paragraph separators, and the bidirectional
# overrides and isolates that make a name display differently from what it is.
_NOT_SINGLE_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def single_line(text: str) -> str:
    """A name as people type it, kept to one line: it ends up in mail subjects, shell comments
    and page titles, where a newline or a control character would change the meaning."""
    return " ".join(_NOT_SINGLE_LINE.sub(" ", text or "").split())


@transaction.atomic
def allocation_request(*, pi, title: str, kind: str, requested_sus: Decimal, justification: str,
                       start_date: date, end_date: date, storage_gb: int = 1000) -> Allocation:
    title = single_line(title)
    if not title:
        raise ValidationError({"title": "Give the allocation a title."})
    if end_date <= start_date:
        raise ValidationError({"end_date": "The end date must be after the start date."})
    allocation = Allocation.objects.create(
        pi=pi, title=title, kind=kind, requested_sus=requested_sus, justification=justification,
        start_date=start_date, end_date=end_date, storage_gb=storage_gb)
    Membership.objects.create(allocation=allocation, user=pi, role=MembershipRole.PI)
    return allocation


def allocation_start_review(*, allocation: Allocation, reviewer) -> Allocation:
    if allocation.status == AllocationStatus.REQUESTED:
        allocation.status = AllocationStatus.UNDER_REVIEW
        allocation.reviewer = reviewer
        allocation.save(update_fields=["status", "reviewer", "updated_at"])
    return allocation


def _project_name(allocation: Allocation) -> str:
    slug = slugify(allocation.title)[:40] or "allocation"
    return f"{settings.PORTAL_PROJECT_PREFIX}-{allocation.pk}-{slug}-{secrets.token_hex(3)}"


@transaction.atomic
def allocation_approve(*, allocation: Allocation, reviewer, awarded_sus: Decimal, start_date: date,
                       end_date: date, note: str = "", existing_project_id: str = ""):
    """Award the SUs and enqueue the provisioning of the OpenStack project; returns the operation."""
    from . import tasks

    allocation = Allocation.objects.select_for_update().get(pk=allocation.pk)
    if allocation.status not in REVIEWABLE:
        raise ValidationError(f"Only a requested allocation can be approved; this one is "
                              f"{allocation.get_status_display().lower()}.")
    if end_date <= start_date:
        raise ValidationError("The end date must be after the start date.")
    existing_project_id = (existing_project_id or "").strip()
    if existing_project_id:
        _check_project_is_free(allocation=allocation, project_id=existing_project_id)
    allocation.status = AllocationStatus.APPROVED
    allocation.awarded_sus = awarded_sus
    allocation.start_date, allocation.end_date = start_date, end_date
    allocation.reviewer, allocation.reviewed_at, allocation.decision_note = reviewer, timezone.now(), note
    allocation.openstack_project_id = existing_project_id or allocation.openstack_project_id
    allocation.openstack_project_name = allocation.openstack_project_name or _project_name(allocation)
    allocation.save()
    LedgerEntry.objects.create(allocation=allocation, kind=LedgerKind.AWARD, sus=awarded_sus,
                               note=f"Awarded by {reviewer}", user=reviewer)
    operation = portal_services.operation_create(kind="allocation.provision", target=f"allocation:{allocation.pk}",
                                                 user=reviewer)
    portal_services.status_row_enqueue(row=operation, task=tasks.provision_allocation)
    return operation


def _portal_own_project_ids() -> set[str]:
    try:
        from . import provisioning
        own = provisioning.portal_own_project_ids
    except (ImportError, AttributeError):  # older checkouts cannot tell: no project is the portal's own
        return set()
    try:
        return {project_id.lower() for project_id in own() if project_id}
    except CloudError as exc:  # unknown is not "free": refuse rather than risk giving one away
        raise ValidationError(f"Could not check whether the project is the portal's own ({exc}); "
                              "try again.") from exc


def _check_project_is_free(*, allocation: Allocation, project_id: str) -> None:
    """Linking hands the project's resources to the allocation's members: never another
    allocation's project, never the portal's own."""
    if connection.vendor == "postgresql":
        # Two approvals linking the same id at once: the second waits and then sees the first.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                           [f"allocation-project:{project_id.lower()}"])
    holder = (Allocation.objects.filter(openstack_project_id__iexact=project_id).exclude(pk=allocation.pk)
              .only("pk", "title").first())
    if holder is not None:
        raise ValidationError(f"Project {project_id} already belongs to allocation #{holder.pk} "
                              f"“{holder.title}”; an existing project can be linked to one allocation only.")
    if project_id.lower() in _portal_own_project_ids():
        raise ValidationError(f"Project {project_id} is the portal's own project and cannot be given to an "
                              "allocation.")


@transaction.atomic
def allocation_retry_provisioning(*, allocation: Allocation, by):
    """Re-run provisioning for an approved allocation whose project setup failed."""
    from . import tasks

    if allocation.status != AllocationStatus.APPROVED:
        raise ValidationError("Only an approved allocation still waiting for its project can be retried.")
    operation = portal_services.operation_create(kind="allocation.provision", target=f"allocation:{allocation.pk}",
                                                 user=by)
    portal_services.status_row_enqueue(row=operation, task=tasks.provision_allocation)
    return operation


@transaction.atomic
def allocation_reject(*, allocation: Allocation, reviewer, note: str) -> Allocation:
    if allocation.status not in REVIEWABLE:
        raise ValidationError("Only a requested allocation can be rejected.")
    if not note.strip():
        raise ValidationError("Say why the request is rejected; the PI is emailed this note.")
    allocation.status = AllocationStatus.REJECTED
    allocation.reviewer, allocation.reviewed_at, allocation.decision_note = reviewer, timezone.now(), note
    allocation.save()
    transaction.on_commit(lambda: notifications.notify_rejected(allocation))
    return allocation


ALREADY_ADDED = "These SUs were already added (the form was sent twice); nothing was added again."


@transaction.atomic
def allocation_add_sus(*, allocation: Allocation, sus: Decimal, by, note: str = "",
                       key: str | None = None) -> LedgerEntry:
    """Award more SUs. `key` is the one-time key of the form that asked: a second use adds nothing."""
    if sus <= 0:
        raise ValidationError("Add a positive number of SUs.")
    allocation = Allocation.objects.select_for_update().get(pk=allocation.pk)
    if key and LedgerEntry.objects.filter(idempotency_key=key).exists():
        raise ValidationError(ALREADY_ADDED)
    try:
        with transaction.atomic():  # a concurrent use of the key loses on the unique constraint
            entry = LedgerEntry.objects.create(allocation=allocation, kind=LedgerKind.AWARD, sus=sus,
                                               note=single_line(note)[:255] or f"Supplement by {by}", user=by,
                                               idempotency_key=key or None)
    except IntegrityError:
        if not key:
            raise
        raise ValidationError(ALREADY_ADDED) from None
    allocation.awarded_sus = (allocation.awarded_sus or Decimal(0)) + sus
    allocation.save(update_fields=["awarded_sus", "updated_at"])
    _reenable_if_eligible(allocation, by=by)
    return entry


@transaction.atomic
def allocation_extend(*, allocation: Allocation, end_date: date, by) -> Allocation:
    if end_date <= allocation.end_date:
        raise ValidationError(f"The new end date must be after {allocation.end_date}.")
    allocation.end_date = end_date
    allocation.save(update_fields=["end_date", "updated_at"])
    _reenable_if_eligible(allocation, by=by)
    return allocation


def _reenable_if_eligible(allocation: Allocation, by=None) -> None:
    """An exhausted or expired allocation that has SUs and time again is usable again."""
    from . import tasks

    if allocation.status not in (AllocationStatus.EXHAUSTED, AllocationStatus.EXPIRED):
        return
    if allocation.balance() <= 0 or allocation.end_date < timezone.localdate():
        return
    allocation.status = AllocationStatus.ACTIVE
    allocation.disabled_at = allocation.shelved_at = None
    allocation.warned_10_at = allocation.warned_25_at = None
    allocation.save()
    if allocation.openstack_project_id:
        operation = portal_services.operation_create(kind="allocation.restore_quotas",
                                                     target=f"allocation:{allocation.pk}", user=by)
        portal_services.status_row_enqueue(row=operation, task=tasks.restore_quotas)


@transaction.atomic
def allocation_close(*, allocation: Allocation, by, note: str = ""):
    from . import tasks

    if allocation.status == AllocationStatus.CLOSED:
        raise ValidationError("The allocation is already closed.")
    allocation.status = AllocationStatus.CLOSED
    allocation.disabled_at = allocation.disabled_at or timezone.now()
    if note:
        allocation.decision_note = f"{allocation.decision_note}\n{note}".strip()
    allocation.save()
    if allocation.openstack_project_id:
        operation = portal_services.operation_create(kind="allocation.close", target=f"allocation:{allocation.pk}",
                                                     user=by)
        portal_services.status_row_enqueue(row=operation, task=tasks.close_allocation)
        return operation
    return None


@transaction.atomic
def membership_add(*, allocation: Allocation, user, role: str = MembershipRole.MEMBER, by=None) -> Membership:
    from . import tasks

    if allocation.status in (AllocationStatus.CLOSED, AllocationStatus.REJECTED):
        raise ValidationError("Members cannot be added to a closed or rejected allocation.")
    if not EmailAddress.objects.filter(user=user, verified=True).exists():
        # Access to a project goes only to an address its owner has proven they read.
        raise ValidationError(f"{user.email} has not verified their email address yet.")
    membership, created = Membership.objects.get_or_create(allocation=allocation, user=user,
                                                           defaults={"role": role})
    if not created:
        raise ValidationError(f"{user.email} is already a member.")
    if allocation.openstack_project_id:  # otherwise provisioning grants every member's role
        operation = portal_services.operation_create(
            kind="membership.grant", target=f"allocation:{allocation.pk}", user=by,
            params={"membership_id": membership.pk, "user_id": user.pk, "email": user.email})
        portal_services.status_row_enqueue(row=operation, task=tasks.grant_membership)
    return membership


@transaction.atomic
def membership_remove(*, membership: Membership, by) -> None:
    from . import tasks

    if membership.role == MembershipRole.PI:
        raise ValidationError("The PI cannot be removed from their own allocation.")
    allocation = membership.allocation
    user_id, email = membership.user_id, membership.user.email
    membership.delete()
    if allocation.openstack_project_id:
        operation = portal_services.operation_create(
            kind="membership.revoke", target=f"allocation:{allocation.pk}", user=by,
            params={"user_id": user_id, "email": email})
        portal_services.status_row_enqueue(row=operation, task=tasks.revoke_membership)


@transaction.atomic
def flavor_access_apply(*, kind: str, by=None) -> None:
    """After the kind's flavor rule changed: re-apply it to each of the kind's projects, on commit
    (a status row per project, so its PI sees it and each is retried on its own)."""
    from . import tasks
    from .models import METERED_STATUSES

    allocations = Allocation.objects.filter(kind=kind, status__in=METERED_STATUSES).exclude(openstack_project_id="")
    for allocation in allocations.only("pk"):
        operation = portal_services.operation_create(
            kind="allocation.flavor_access", target=f"allocation:{allocation.pk}", user=by, params={"kind": kind})
        portal_services.status_row_enqueue(row=operation, task=tasks.sync_flavor_access)
