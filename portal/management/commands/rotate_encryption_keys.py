"""Re-encrypt every stored secret with the first of PORTAL_ENCRYPTION_KEYS."""
from django.core.management.base import BaseCommand, CommandError

from portal import crypto


class Command(BaseCommand):
    help = ("Re-encrypt every stored secret (Keystone passwords) with the first key in PORTAL_ENCRYPTION_KEYS. "
            "Run it after putting a new key first; once it reports no unreadable rows, the old keys can go.")

    def handle(self, *args, **options):
        rewritten, unreadable = crypto.stored_secrets_rotate()
        self.stdout.write(f"Re-encrypted {rewritten} stored secret(s) with the first key.")
        if unreadable:
            raise CommandError(
                f"{len(unreadable)} stored secret(s) could not be decrypted with any key and were left as they are "
                f"(put the key they were written with back in PORTAL_ENCRYPTION_KEYS, or SECRET_KEY_FALLBACKS "
                f"for secrets from before PORTAL_ENCRYPTION_KEYS): " + ", ".join(unreadable)
            )
