"""Create (once) the demo admin account that `make run` prints, with a verified email."""
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo admin account if it does not exist, and print how to sign in."

    def add_arguments(self, parser):
        parser.add_argument("--email", default="admin@example.org")
        parser.add_argument("--password", default="admin-demo-password")

    def handle(self, *args, email, password, **options):
        User = get_user_model()
        user, created = User.objects.get_or_create(
            username="admin", defaults={"email": email, "is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password(password)
            user.save()
        EmailAddress.objects.update_or_create(
            user=user, email=user.email, defaults={"verified": True, "primary": True}
        )
        shown = password if user.check_password(password) else "(the password you set)"
        self.stdout.write(f"Demo admin: sign in at /accounts/login/ as {user.email} / {shown}")
