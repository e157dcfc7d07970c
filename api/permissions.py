"""What a request may do: a read-only token only reads; a token limited to one allocation sees
only that allocation (selectors below filter by it); the session user is a full member."""
from __future__ import annotations

from rest_framework import permissions

from .models import ApiToken


def request_token(request) -> ApiToken | None:
    auth = getattr(request, "auth", None)
    return auth if isinstance(auth, ApiToken) else None


class TokenScopePermission(permissions.BasePermission):
    message = "This token is read-only."

    def has_permission(self, request, view) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        token = request_token(request)
        if token is None or request.method in permissions.SAFE_METHODS:
            return True
        return token.can_write
