"""Errors as RFC 9457 problem details (`application/problem+json`), so a program can act on them."""
from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied, ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response

from allocations.charging import InsufficientBalance
from instances.services import ActionNotAllowed
from portal.cloud import errors as cloud

PROBLEM_BASE = "/api/problems/"


class Problem(exceptions.APIException):
    """An error with its own type slug and extra members."""

    def __init__(self, status_code: int, slug: str, title: str, detail: str, **extra):
        super().__init__(detail)
        self.status_code, self.slug, self.title, self.extra = status_code, slug, title, extra


def problem_response(*, status_code: int, slug: str, title: str, detail: str, headers=None, **extra) -> Response:
    body = {"type": f"{PROBLEM_BASE}{slug}", "title": title, "status": status_code, "detail": detail, **extra}
    response = Response(body, status=status_code, headers=headers, content_type="application/problem+json")
    return response


def _from_domain(exc) -> Problem | None:
    if isinstance(exc, InsufficientBalance):
        extra = {"shortfall_sus": f"{exc.shortfall:f}"} if exc.shortfall is not None else {}
        return Problem(402 if exc.shortfall is not None else 409, "insufficient-balance",
                       "The allocation cannot carry this", str(exc), **extra)
    if isinstance(exc, ActionNotAllowed):
        return Problem(409, "action-not-allowed", "The action does not apply now", str(exc))
    if isinstance(exc, cloud.QuotaExceeded):
        return Problem(409, "quota-exceeded", "The project's quota would be exceeded", str(exc))
    if isinstance(exc, cloud.NoValidHost):
        return Problem(409, "no-valid-host", "No host has capacity", str(exc))
    if isinstance(exc, cloud.CloudUnavailable):
        return Problem(503, "cloud-unavailable", "The cloud is not answering", str(exc))
    if isinstance(exc, cloud.NotFound):
        return Problem(404, "not-found", "Not found", str(exc))
    if isinstance(exc, cloud.CloudError):
        return Problem(502, "cloud-error", "The cloud refused the request", str(exc),
                       cloud_request_id=exc.request_id or None)
    if isinstance(exc, DjangoValidationError):
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        return Problem(400, "invalid", "The request is not valid", " ".join(exc.messages), errors=errors)
    if isinstance(exc, DjangoPermissionDenied):
        return Problem(403, "forbidden", "Not allowed", str(exc) or "You may not do this.")
    return None


_TITLES = {400: ("invalid", "The request is not valid"), 401: ("unauthenticated", "Sign-in needed"),
           403: ("forbidden", "Not allowed"), 404: ("not-found", "Not found"),
           405: ("method-not-allowed", "Method not allowed"), 406: ("not-acceptable", "Not acceptable"),
           409: ("conflict", "Conflict"), 415: ("unsupported-media-type", "Unsupported media type"),
           429: ("throttled", "Too many requests")}


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    problem = exc if isinstance(exc, Problem) else _from_domain(exc)
    if problem is not None:
        return problem_response(status_code=problem.status_code, slug=problem.slug, title=problem.title,
                                detail=str(problem.detail), **problem.extra)
    # Imported here: rest_framework.views reads DEFAULT_THROTTLE_CLASSES (api.common) on import,
    # and api.common imports this module.
    from rest_framework.views import exception_handler as drf_handler

    response = drf_handler(exc, context)
    if response is None:
        return None
    slug, title = _TITLES.get(response.status_code, ("error", "Error"))
    extra = {}
    if isinstance(exc, exceptions.ValidationError):
        extra["errors"] = response.data if isinstance(response.data, dict) else {"non_field_errors": response.data}
        detail = "Some fields are not valid; see errors."
    else:
        detail = str(getattr(exc, "detail", "")) or title
    headers = {k: v for k, v in response.items() if k in ("WWW-Authenticate", "Retry-After", "Allow")}
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in headers:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return problem_response(status_code=response.status_code, slug=slug, title=title, detail=detail,
                            headers=headers, **extra)
