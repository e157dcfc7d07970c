"""Invitations bind when their address becomes a verified address of a signed-in account.

Two moments: a sign-in (an account that already verified the address, or a sign-up whose
address the invitation link proved), and allauth confirming an address by mail. Each calls
the invitations service; the handlers only pass the account along and say what happened.
"""
from allauth.account.signals import email_confirmed
from django.contrib import messages
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver


def _bind(request, user) -> None:
    from .invitations import invitations_accept_for_user

    for invitation in invitations_accept_for_user(user=user):
        if request is not None:
            messages.success(request, f"You joined “{invitation.allocation.title}” as "
                                      f"{invitation.get_role_display().lower()}.", fail_silently=True)


@receiver(user_logged_in, dispatch_uid="allocations.invitations.on_login")
def bind_invitations_on_login(sender, request, user, **kwargs):
    _bind(request, user)


@receiver(email_confirmed, dispatch_uid="allocations.invitations.on_email_confirmed")
def bind_invitations_on_email_confirmed(request, email_address, **kwargs):
    _bind(request, email_address.user)
