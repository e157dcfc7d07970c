"""Emails to PIs. Each enforcement step mails before it acts."""
from __future__ import annotations

from django.conf import settings
from django.core.mail import send_mail

from .models import Allocation


def _send(allocation: Allocation, subject: str, body: str, to: str = "") -> None:
    from .services import single_line  # services sends these mails, so it imports this module first

    # A header is one line: a title with a newline would make send_mail raise BadHeaderError
    # (and, if it did not, would add headers). Long subjects are cut; the body says it all.
    subject = single_line(f"{settings.ACCOUNT_EMAIL_SUBJECT_PREFIX}{subject}")
    if len(subject) > 200:
        subject = subject[:199] + "…"
    send_mail(subject, body, None, [to or allocation.pi.email], fail_silently=False)


def notify_approved(allocation: Allocation) -> None:
    _send(allocation, f"Allocation approved: {allocation.title}",
          f"Your allocation “{allocation.title}” was approved with {allocation.awarded_sus:,.0f} SUs, "
          f"valid {allocation.start_date} to {allocation.end_date}.\n\n"
          f"Its OpenStack project is {allocation.openstack_project_name}. Members can launch instances now."
          + (f"\n\nReviewer's note: {allocation.decision_note}" if allocation.decision_note else ""))


def notify_rejected(allocation: Allocation) -> None:
    _send(allocation, f"Allocation not approved: {allocation.title}",
          f"Your request “{allocation.title}” was not approved.\n\n{allocation.decision_note}")


def notify_low_balance(allocation: Allocation, percent: int, balance) -> None:
    _send(allocation, f"{percent}% of SUs left: {allocation.title}",
          f"The allocation “{allocation.title}” has {balance:,.0f} SUs left ({percent}% or less of its award). "
          "Request more SUs before it runs out: at zero, no new instances can start.")


def notify_disabled(allocation: Allocation, reason: str, grace_days: int, removal_days: int) -> None:
    _send(allocation, f"Allocation disabled: {allocation.title}",
          f"The allocation “{allocation.title}” {reason}, so no new instances can be started.\n\n"
          f"In {grace_days} days its instances will be shelved, and in {removal_days} days everything in "
          "its project will be deleted, unless it is extended or given more SUs.")


def notify_shelving(allocation: Allocation, removal_days: int) -> None:
    _send(allocation, f"Shelving instances: {allocation.title}",
          f"The allocation “{allocation.title}” has been disabled for the whole grace period. Its instances "
          f"are being shelved now. Everything in the project will be deleted {removal_days} days after it "
          "was disabled.")


def notify_purging(allocation: Allocation) -> None:
    _send(allocation, f"Deleting resources: {allocation.title}",
          f"The allocation “{allocation.title}” was disabled past its removal period. Its instances, "
          "volumes and floating IPs are being deleted now.")


def notify_invited(*, invitation, accept_url: str) -> None:
    """The invitation mail: who asks, to what, and the link (which works once the address is theirs)."""
    allocation, by = invitation.allocation, invitation.invited_by
    inviter = (by.email or by.get_username()) if by else "The PI"
    _send(allocation, f"Invitation to join {allocation.title}",
          f"{inviter} invited you to join “{allocation.title}” as {invitation.get_role_display().lower()}. It is "
          f"an allocation on {settings.PORTAL_NAME}, a research cloud where you can launch instances (including "
          "GPU and large-memory ones) and volumes in the allocation's OpenStack project.\n\n"
          f"Open this link to accept, then sign up (or sign in) with this address, {invitation.email}:\n\n"
          f"{accept_url}\n\n"
          f"The link works until {invitation.expires_at:%Y-%m-%d}. If you did not expect this, ignore this mail: "
          "nothing happens unless you sign up with this address.",
          to=invitation.email)
