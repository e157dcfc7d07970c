"""A student's seats bind to their account when a roster address becomes theirs: at sign-in (an
address already confirmed) and when allauth confirms one by mail."""
from allauth.account.signals import email_confirmed
from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver


@receiver(user_logged_in, dispatch_uid="classes.seats.on_login")
def bind_seats_on_login(sender, request, user, **kwargs):
    from .services import seats_bind

    seats_bind(user=user)


@receiver(email_confirmed, dispatch_uid="classes.seats.on_email_confirmed")
def bind_seats_on_email_confirmed(request, email_address, **kwargs):
    from .services import seats_bind

    seats_bind(user=email_address.user)
