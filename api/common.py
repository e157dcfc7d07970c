"""What every API view shares: which allocations the request may reach, idempotent creates,
ETags on lists, cursor pagination and per-token throttling."""
from __future__ import annotations

import hashlib
import json
from functools import wraps

from django.db import IntegrityError, transaction
from django.http import Http404
from rest_framework import pagination, throttling
from rest_framework.response import Response

from allocations.selectors import allocation_list_for_user

from .models import IdempotentRequest
from .permissions import request_token
from .problems import problem_response


def allocations_for(request):
    """The allocations this request may reach: the user's, narrowed to the token's one if it has one."""
    qs = allocation_list_for_user(user=request.user)
    token = request_token(request)
    if token is not None and token.allocation_id:
        qs = qs.filter(pk=token.allocation_id)
    return qs


def allocation_for(request, pk):
    """One allocation the request may reach, or 404 (the same for someone else's and a bad id)."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise Http404("No such allocation.")
    allocation = allocations_for(request).filter(pk=pk).first()
    if allocation is None:
        raise Http404("No such allocation.")
    return allocation


def limit_to_token(request, qs, field: str = "allocation"):
    token = request_token(request)
    if token is not None and token.allocation_id:
        qs = qs.filter(**{f"{field}_id": token.allocation_id})
    return qs


class Cursor(pagination.CursorPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-id"


class TokenRateThrottle(throttling.SimpleRateThrottle):
    """Per token (or per session user): each token has its own budget."""

    scope = "token"

    def get_cache_key(self, request, view):
        if not (request.user and request.user.is_authenticated):
            return None
        token = request_token(request)
        ident = f"token-{token.pk}" if token else f"user-{request.user.pk}"
        return self.cache_format % {"scope": self.scope, "ident": ident}


def _fingerprint(request) -> str:
    try:
        body = json.dumps(request.data, sort_keys=True, default=str)
    except Exception:  # noqa: BLE001 - an unparsable body still has a stable fingerprint
        body = ""
    return hashlib.sha256(f"{request.method}|{request.path}|{body}".encode()).hexdigest()


def idempotent(view_method):
    """With an `Idempotency-Key` header, the first successful answer is stored and every retry
    gets it again: a retried POST never makes a second server or volume."""

    @wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return view_method(self, request, *args, **kwargs)
        if len(key) > 255:
            return problem_response(status_code=400, slug="invalid", title="The request is not valid",
                                    detail="The Idempotency-Key header is longer than 255 characters.")
        fingerprint = _fingerprint(request)
        if (answer := _stored(request, key, fingerprint)) is not None:
            return answer
        try:
            with transaction.atomic():
                response = view_method(self, request, *args, **kwargs)
                if 200 <= response.status_code < 300:
                    IdempotentRequest.objects.create(
                        user=request.user, key=key, fingerprint=fingerprint, status_code=response.status_code,
                        body=response.data, location=response.get("Location", ""))
        except IntegrityError:  # a concurrent retry answered first: its answer stands, ours is undone
            return _stored(request, key, fingerprint)
        return response

    return wrapper


def _stored(request, key: str, fingerprint: str):
    found = IdempotentRequest.objects.filter(user=request.user, key=key).first()
    if found is None:
        return None
    if found.fingerprint != fingerprint:
        return problem_response(status_code=422, slug="idempotency-key-reused", title="Idempotency key reused",
                                detail="This Idempotency-Key was used for a different request.")
    headers = {"Location": found.location, "Idempotent-Replayed": "true"} if found.location else {
        "Idempotent-Replayed": "true"}
    return Response(found.body, status=found.status_code, headers=headers)


def with_etag(request, response: Response) -> Response:
    """ETag from the list's content; If-None-Match answers 304 without a body."""
    digest = hashlib.sha256(json.dumps(response.data, sort_keys=True, default=str).encode()).hexdigest()[:32]
    etag = f'W/"{digest}"'
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return Response(status=304, headers={"ETag": etag})
    response["ETag"] = etag
    return response
