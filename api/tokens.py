"""Making, checking and revoking personal API tokens (services; the Tokens page and the
authentication class call these)."""
from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.utils import timezone

from .models import ApiToken, TokenScope

PREFIX = "rcp"
LAST_USED_RESOLUTION = timedelta(minutes=1)  # write last_used_at at most this often


def _hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def token_create(*, user, name: str, scope: str, expires_in_days: int, allocation=None) -> tuple[ApiToken, str]:
    """Returns (row, the token itself). The token is shown once; only its hash is stored."""
    if scope not in TokenScope.values:
        raise ValidationError({"scope": "Choose read or write."})
    if allocation is not None and not allocation.memberships.filter(user=user).exists():
        raise ValidationError({"allocation": "You are not a member of that allocation."})
    prefix = secrets.token_hex(4)
    raw = f"{PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiToken.objects.create(user=user, name=name, prefix=prefix, key_hash=_hash(raw), scope=scope,
                                  allocation=allocation,
                                  expires_at=timezone.now() + timedelta(days=expires_in_days))
    return row, raw


def token_authenticate(raw: str) -> ApiToken | None:
    """The active token for this string, or None (unknown, expired or revoked)."""
    if not raw.startswith(f"{PREFIX}_"):
        return None
    token = ApiToken.objects.select_related("user", "allocation").filter(key_hash=_hash(raw)).first()
    if token is None or not token.is_active or not token.user.is_active:
        return None
    now = timezone.now()
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def token_revoke(*, token: ApiToken) -> None:
    if token.revoked_at is None:
        ApiToken.objects.filter(pk=token.pk).update(revoked_at=timezone.now())
