"""Personal API tokens and the record of idempotent requests."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class TokenScope(models.TextChoices):
    READ = "read", "Read only"
    WRITE = "write", "Read and write"


class ApiToken(models.Model):
    """A personal token: `rcp_<prefix>_<secret>`. Only a hash of the whole token is kept."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=64)
    prefix = models.CharField(max_length=12, unique=True, help_text="Shown to tell tokens apart; not secret.")
    key_hash = models.CharField(max_length=64, unique=True)
    scope = models.CharField(max_length=8, choices=TokenScope.choices, default=TokenScope.READ)
    allocation = models.ForeignKey("allocations.Allocation", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="+", help_text="If set, the token reaches only this allocation.")
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()

    @property
    def can_write(self) -> bool:
        return self.scope == TokenScope.WRITE


class IdempotentRequest(models.Model):
    """The first answer to a create sent with an Idempotency-Key, replayed to any retry."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField(help_text="0 while the first request is being answered.")
    body = models.JSONField(default=dict)
    location = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="one_answer_per_idempotency_key")]
        indexes = [models.Index(fields=["created_at"], name="idempotent_request_age")]  # pruned after 24 h

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code or 'answering'})"
