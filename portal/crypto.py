"""Symmetric encryption for the few secrets the portal must keep (Keystone passwords).

The keys are PORTAL_ENCRYPTION_KEYS, not SECRET_KEY, so either can be rotated without breaking
the other. The first key encrypts and every key decrypts: to rotate, put a new key first, run
`manage.py rotate_encryption_keys`, then drop the old key.

Secrets written before PORTAL_ENCRYPTION_KEYS existed were encrypted with a key derived from
SECRET_KEY. That legacy key (one per SECRET_KEY and SECRET_KEY_FALLBACKS entry) is tried last and
never encrypts; the rotation command moves such rows to the first key.

A stored secret is any model field whose name starts with `encrypted_`: that is how the rotation
finds them, so a new secret field is rotated without touching this module.
"""
from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction

ENCRYPTED_FIELD_PREFIX = "encrypted_"
MAKE_A_KEY = 'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'


def _configured_keys() -> list[Fernet]:
    keys = [key.strip() for key in settings.PORTAL_ENCRYPTION_KEYS if key.strip()]
    if not keys:
        raise ImproperlyConfigured(f"PORTAL_ENCRYPTION_KEYS is empty. Make a key with: {MAKE_A_KEY}")
    try:
        return [Fernet(key) for key in keys]
    except ValueError:
        # Never echo the value: it is a secret, or a typo of one.
        raise ImproperlyConfigured(
            f"PORTAL_ENCRYPTION_KEYS holds a value that is not a Fernet key. Make one with: {MAKE_A_KEY}"
        ) from None


def _legacy_keys() -> list[Fernet]:
    """The SECRET_KEY-derived keys every secret was encrypted with before PORTAL_ENCRYPTION_KEYS."""
    secret_keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    return [
        Fernet(base64.urlsafe_b64encode(hashlib.sha256(f"portal-secrets:{secret}".encode()).digest()))
        for secret in secret_keys
    ]


def _keys() -> MultiFernet:
    return MultiFernet(_configured_keys() + _legacy_keys())


def encrypt(text: str) -> str:
    return _keys().encrypt(text.encode()).decode()


def decrypt(token: str) -> str:
    """The plain text; raises cryptography.fernet.InvalidToken when no key opens the token."""
    return _keys().decrypt(token.encode()).decode()


def reencrypt(token: str) -> str | None:
    """The token encrypted with the first key, or None when it already is."""
    try:
        _configured_keys()[0].decrypt(token.encode())
    except InvalidToken:
        return _keys().rotate(token.encode()).decode()
    return None


def encrypted_fields() -> list[tuple[type[models.Model], str]]:
    return [
        (model, field.name)
        for model in apps.get_models()
        for field in model._meta.concrete_fields
        if field.name.startswith(ENCRYPTED_FIELD_PREFIX)
    ]


def stored_secrets_rotate(*, batch_size: int = 200) -> tuple[int, list[str]]:
    """Re-encrypt with the first key every stored secret that is not already.

    Returns how many rows were rewritten and the rows no key could open ("label pk field").
    Each batch is locked while it is rewritten, so a concurrent write is not lost.
    """
    rewritten, unreadable = 0, []
    for model, field in encrypted_fields():
        last_pk = None
        while True:
            with transaction.atomic():
                rows = model.objects.select_for_update().filter(**{f"{field}__gt": ""}).order_by("pk")
                if last_pk is not None:
                    rows = rows.filter(pk__gt=last_pk)
                batch = list(rows.values_list("pk", field)[:batch_size])
                for pk, token in batch:
                    try:
                        new_token = reencrypt(token)
                    except InvalidToken:
                        unreadable.append(f"{model._meta.label} {pk} {field}")
                        continue
                    if new_token is not None:
                        model.objects.filter(pk=pk).update(**{field: new_token})
                        rewritten += 1
            if len(batch) < batch_size:
                break
            last_pk = batch[-1][0]
    return rewritten, unreadable
