"""Adding people to an allocation by email: at once when the address is a verified portal
account, otherwise by an invitation that binds when its owner signs up or signs in.

The mailed link carries a random token; only its SHA-256 is stored. What binds an invitation is
a verified email equal to the invited address (allauth confirms it by mail), never the link
alone: a forwarded link still needs the invited mailbox. The link shows what one is invited to
and leads to sign-up with the address filled in.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from dataclasses import dataclass, field
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models.functions import Lower
from django.utils import timezone

from . import notifications
from .models import INVITATION_DAYS, Allocation, AllocationStatus, Invitation, Membership, MembershipRole
from .services import membership_add

logger = logging.getLogger(__name__)

INVITABLE_ROLES = (MembershipRole.MEMBER, MembershipRole.MANAGER)


@dataclass
class InviteOutcome:
    added: list[str] = field(default_factory=list)  # verified accounts, members now
    invited: list[str] = field(default_factory=list)  # mailed an invitation (or mailed again)

    @property
    def summary(self) -> str:
        parts = []
        if self.added:
            parts.append(f"Added {_listed(self.added)}; they can use the project now.")
        if self.invited:
            parts.append(f"Invited {_listed(self.invited)} by email; each becomes a member on signing up or "
                         f"signing in with that address (the link works for {INVITATION_DAYS} days).")
        return " ".join(parts)


def _listed(emails: list[str]) -> str:
    return emails[0] if len(emails) == 1 else ", ".join(emails[:-1]) + " and " + emails[-1]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _verified_owner(email: str):
    """The one account that has verified this address, or None."""
    users = {a.user for a in EmailAddress.objects.filter(email__iexact=email, verified=True).select_related("user")}
    return users.pop() if len(users) == 1 else None


def _pending(qs=None):
    return (qs if qs is not None else Invitation.objects).filter(
        accepted_at__isnull=True, revoked_at__isnull=True, expires_at__gt=timezone.now())


def members_refusals(*, allocation: Allocation, emails: list[str]) -> list[str]:
    """What stops these addresses being added, one sentence per address (empty: all fine)."""
    if allocation.status in (AllocationStatus.CLOSED, AllocationStatus.REJECTED):
        return ["Members cannot be added to a closed or rejected allocation."]
    problems = []
    member_ids = set(allocation.memberships.values_list("user_id", flat=True))
    for email in emails:
        owner = _verified_owner(email)
        if owner is not None and owner.pk in member_ids:
            problems.append(f"{email} is already a member.")
    return problems


@transaction.atomic
def members_invite(*, allocation: Allocation, emails: list[str], role: str, by, base_url: str) -> InviteOutcome:
    """Add each verified account now; invite every other address by email. All or nothing: any
    refusal raises ValidationError listing each address and why, and nothing is added or sent."""
    if role not in INVITABLE_ROLES:
        raise ValidationError("Choose Member or Manager.")
    allocation = Allocation.objects.select_for_update().get(pk=allocation.pk)
    if problems := members_refusals(allocation=allocation, emails=emails):
        raise ValidationError(problems)
    outcome, mails = InviteOutcome(), []
    for email in emails:
        owner = _verified_owner(email)
        if owner is not None:
            membership_add(allocation=allocation, user=owner, role=role, by=by)
            _pending(allocation.invitations.filter(email__iexact=email)).update(accepted_at=timezone.now(),
                                                                                  accepted_by=owner)
            outcome.added.append(email)
        else:
            mails.append(_invitation_create(allocation=allocation, email=email, role=role, by=by))
            outcome.invited.append(email)
    for invitation, token in mails:
        transaction.on_commit(lambda i=invitation, t=token: notifications.notify_invited(
            invitation=i, accept_url=f"{base_url.rstrip('/')}{invitation_path(t)}"))
    return outcome


def invitation_path(token: str) -> str:
    from django.urls import reverse

    return reverse("allocations:invitation_open", args=[token])


def _invitation_create(*, allocation: Allocation, email: str, role: str, by) -> tuple[Invitation, str]:
    """A new invitation; an earlier pending one to the same address is replaced (its link stops)."""
    now = timezone.now()
    _pending(allocation.invitations.filter(email__iexact=email)).update(revoked_at=now)
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(allocation=allocation, email=email, role=role, invited_by=by,
                                           token_hash=token_hash(token),
                                           expires_at=now + timedelta(days=INVITATION_DAYS))
    return invitation, token


def invitation_for_token(*, token: str) -> Invitation | None:
    return (Invitation.objects.select_related("allocation", "allocation__pi", "invited_by")
            .filter(token_hash=token_hash(token)).first())


def invitation_problem(invitation: Invitation) -> str:
    """Why the invitation can no longer be used, in words, or ""."""
    if invitation.accepted_at:
        return "This invitation was already accepted."
    if invitation.revoked_at:
        return "This invitation was withdrawn (or replaced by a newer one). Ask for a new one if you still need it."
    if invitation.expires_at <= timezone.now():
        return (f"This invitation expired on {timezone.localtime(invitation.expires_at):%b %d, %Y}. "
                "Ask the allocation's PI for a new one.")
    if invitation.allocation.status in (AllocationStatus.CLOSED, AllocationStatus.REJECTED):
        return "The allocation has been closed, so it takes no new members."
    return ""


def user_holds_email(*, user, email: str) -> bool:
    return EmailAddress.objects.filter(user=user, email__iexact=email, verified=True).exists()


@transaction.atomic
def invitation_accept(*, invitation: Invitation, user) -> Membership:
    """Make `user` a member through the invitation; only an account that verified the invited
    address may (ValidationError otherwise, in words)."""
    invitation = Invitation.objects.select_for_update().select_related("allocation").get(pk=invitation.pk)
    if problem := invitation_problem(invitation):
        raise ValidationError(problem)
    if not user_holds_email(user=user, email=invitation.email):
        raise ValidationError(f"This invitation is for {invitation.email}. Sign in with that address, or add it "
                              "to your account under Email addresses and confirm it.")
    membership = Membership.objects.filter(allocation=invitation.allocation, user=user).first()
    if membership is None:
        membership = membership_add(allocation=invitation.allocation, user=user, role=invitation.role,
                                    by=invitation.invited_by)
    invitation.accepted_at, invitation.accepted_by = timezone.now(), user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    return membership


def invitations_accept_for_user(*, user) -> list[Invitation]:
    """Bind every pending invitation to an address this account has verified (called when it signs
    in or confirms an address). Returns the invitations accepted."""
    emails = [e.lower() for e in EmailAddress.objects.filter(user=user, verified=True).values_list("email", flat=True)]
    if not emails:
        return []
    accepted = []
    for invitation in _pending().annotate(email_lower=Lower("email")).filter(email_lower__in=emails) \
            .select_related("allocation"):
        try:
            invitation_accept(invitation=invitation, user=user)
        except ValidationError as exc:  # e.g. the allocation closed meanwhile: the invitation stays as it is
            logger.info("invitation %s not accepted by user %s: %s", invitation.pk, user.pk, exc.messages)
        else:
            accepted.append(invitation)
    return accepted


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, by) -> None:
    invitation = Invitation.objects.select_for_update().get(pk=invitation.pk)
    if invitation.accepted_at:
        raise ValidationError(f"{invitation.email} already accepted; remove them from the members instead.")
    if invitation.revoked_at is None:
        invitation.revoked_at = timezone.now()
        invitation.save(update_fields=["revoked_at"])


def invitations_open(*, allocation: Allocation) -> list[Invitation]:
    """Invitations not accepted or withdrawn (pending and expired), newest first, for the PI's list."""
    return list(allocation.invitations.filter(accepted_at__isnull=True, revoked_at__isnull=True)
                .select_related("invited_by").order_by("-created_at"))
