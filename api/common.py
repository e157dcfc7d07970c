"""What every API view shares: which allocations the request may reach, strict query parameters,
idempotent creates, ETags on lists, cursor pagination and per-token throttling."""
from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from functools import wraps

from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from rest_framework import exceptions, pagination, serializers, throttling
from rest_framework.response import Response

from allocations.selectors import MAX_PK, allocation_list_for_user, allocation_pick

from .models import IdempotentRequest
from .permissions import request_token
from .problems import problem_response

# Imported by DRF's settings (DEFAULT_THROTTLE_CLASSES) before rest_framework.views exists: this
# module must not import views, generics or drf_spectacular.openapi at the top.
MAX_ID = MAX_PK  # PostgreSQL bigint: a larger id cannot name a row
IDEMPOTENCY_WINDOW = timedelta(hours=24)  # a key's first answer is replayed this long, then forgotten


def allocations_for(request):
    """The allocations this request may reach: the user's, narrowed to the token's one if it has one."""
    qs = allocation_list_for_user(user=request.user)
    token = request_token(request)
    if token is not None and token.allocation_id:
        qs = qs.filter(pk=token.allocation_id)
    return qs


def allocation_for(request, pk):
    """One allocation the request may reach, or 404 (the same for someone else's and a bad id)."""
    if pk is None:
        raise Http404("No such allocation.")
    return allocation_pick(user=request.user, pk=pk, among=allocations_for(request))


def limit_to_token(request, qs, field: str = "allocation"):
    token = request_token(request)
    if token is not None and token.allocation_id:
        qs = qs.filter(**{f"{field}_id": token.allocation_id})
    return qs


def reachable(request, row, what: str):
    """The row (already the user's), or 404 if the token is limited to another allocation."""
    token = request_token(request)
    if token is not None and token.allocation_id and row.allocation_id != token.allocation_id:
        raise Http404(f"No such {what}.")
    return row


def query(request, serializer_class) -> dict:
    """The query parameters, validated like a body: a bad value is a 400, never ignored."""
    parsed = serializer_class(data=request.query_params)
    parsed.is_valid(raise_exception=True)
    return parsed.validated_data


def body(request) -> dict:
    """The JSON body, which must be an object."""
    if not isinstance(request.data, dict):
        raise exceptions.ValidationError({"non_field_errors": ["The body must be a JSON object."]})
    return request.data


class Cursor(pagination.CursorPagination):
    """Cursor pagination that refuses a bad `page_size` or `cursor` with 400 instead of guessing."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500
    ordering = "-id"

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if raw is None:
            return self.page_size
        try:
            size = int(raw)
        except ValueError:
            size = 0
        if not 1 <= size <= self.max_page_size:
            raise exceptions.ValidationError({"page_size": [f"A whole number from 1 to {self.max_page_size}."]})
        return size

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except exceptions.NotFound:
            cursor = None
            valid = False
        else:
            valid = cursor is None or cursor.position is None or (
                cursor.position.isdigit() and 0 < int(cursor.position) <= MAX_ID)
        if not valid:
            raise exceptions.ValidationError({"cursor": ["Not a cursor from this list; use the next or "
                                                         "previous link as given."]})
        return cursor

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"].update(minimum=1, maximum=self.max_page_size)
        return parameters


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
        data = json.dumps(request.data, sort_keys=True, default=str)
    except Exception:  # noqa: BLE001 - an unparsable body still has a stable fingerprint
        data = ""
    return hashlib.sha256(f"{request.method}|{request.get_full_path()}|{data}".encode()).hexdigest()


def idempotent(view_method):
    """With an `Idempotency-Key` header, the first successful answer is stored and every retry in
    the next 24 hours gets it again: a retried POST never makes a second server or volume.

    The key's row is written before the work, in the same transaction: a concurrent retry waits on
    it, then replays the answer (or, if the first failed, does the work itself)."""

    @wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        if "Idempotency-Key" not in request.headers:
            return view_method(self, request, *args, **kwargs)
        key = request.headers["Idempotency-Key"].strip()
        if not key or len(key) > 255:
            return problem_response(status_code=400, slug="invalid", title="The request is not valid",
                                    detail="The Idempotency-Key header must be 1 to 255 characters.")
        fingerprint = _fingerprint(request)
        if (answer := _stored(request, key, fingerprint)) is not None:
            return answer
        try:
            with transaction.atomic():
                record = IdempotentRequest.objects.create(user=request.user, key=key, fingerprint=fingerprint,
                                                          status_code=0)
                response = view_method(self, request, *args, **kwargs)
                if 200 <= response.status_code < 300:
                    record.status_code, record.body = response.status_code, response.data
                    record.location = response.get("Location", "")
                    record.save(update_fields=["status_code", "body", "location"])
                else:
                    record.delete()
        except IntegrityError:  # a concurrent request with this key answered first: its answer stands
            return _stored(request, key, fingerprint) or problem_response(
                status_code=409, slug="conflict", title="Conflict",
                detail="A request with this Idempotency-Key is still being answered; retry in a moment.")
        _prune()
        return response

    wrapper.idempotent = True  # api.schema documents the header and its 422
    return wrapper


def _prune() -> None:
    IdempotentRequest.objects.filter(created_at__lt=timezone.now() - IDEMPOTENCY_WINDOW).delete()


def _stored(request, key: str, fingerprint: str):
    found = IdempotentRequest.objects.filter(user=request.user, key=key,
                                             created_at__gte=timezone.now() - IDEMPOTENCY_WINDOW).first()
    if found is None:
        IdempotentRequest.objects.filter(user=request.user, key=key).delete()  # expired: the key is free again
        return None
    if found.fingerprint != fingerprint:
        return problem_response(status_code=422, slug="idempotency-key-reused", title="Idempotency key reused",
                                detail="This Idempotency-Key was used for a different request.")
    headers = {"Idempotent-Replayed": "true"}
    if found.location:
        headers["Location"] = found.location
    return Response(found.body, status=found.status_code, headers=headers)


def with_etag(request, response: Response) -> Response:
    """ETag from the list's content; If-None-Match answers 304 without a body."""
    digest = hashlib.sha256(json.dumps(response.data, sort_keys=True, default=str).encode()).hexdigest()[:32]
    etag = f'W/"{digest}"'
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return Response(status=304, headers={"ETag": etag})
    response["ETag"] = etag
    return response


class AllocationQuery(serializers.Serializer):
    allocation = serializers.IntegerField(min_value=1, max_value=MAX_ID, help_text="The allocation's id")


class AllocationRegionQuery(AllocationQuery):
    region = serializers.CharField(required=False, allow_blank=True, default="", max_length=64,
                                   help_text="A region the allocation is enabled in; empty: the primary")


class OptionalAllocationQuery(serializers.Serializer):
    allocation = serializers.IntegerField(required=False, min_value=1, max_value=MAX_ID,
                                          help_text="Only this allocation's")


def region_of(allocation, name: str) -> str:
    """The region an API call asked for, by key ("" the primary): one the allocation is enabled in,
    else a 400 naming the field."""
    from rest_framework.exceptions import ValidationError as ApiValidationError

    from allocations.regions import allocation_region_keys, region_key

    key = region_key(name)
    if key not in allocation_region_keys(allocation=allocation):
        raise ApiValidationError({"region": [f"The allocation is not enabled in the region {name}."]})
    return key
