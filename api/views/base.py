"""The base every API view shares: authentication, scope checks, problem details, throttling,
the schema's error responses, and ids that name no row answering 404."""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import APIView

from ..common import MAX_ID, TokenRateThrottle
from ..permissions import TokenScopePermission
from ..schema import ApiAutoSchema


class ApiView(APIView):
    permission_classes = [TokenScopePermission]
    throttle_classes = [TokenRateThrottle]
    schema = ApiAutoSchema()

    @classmethod
    def as_view(cls, **initkwargs):
        # A token request has no session: DRF authenticates it, so the site-wide login redirect
        # must not answer first (DRF answers 401 problem details instead).
        view = super().as_view(**initkwargs)
        view.login_required = False
        return view

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        # An id PostgreSQL cannot hold names no row: 404 like any other unknown id.
        if "pk" in kwargs and not 0 < kwargs["pk"] <= MAX_ID:
            raise exceptions.NotFound("Not found.")


class NotFoundView(ApiView):
    """Any other /api/v1/ URL (a typo, a negative or non-numeric id): 404 problem details, like an
    unknown id, after the same authentication as every other API URL."""

    schema = None  # not an operation

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        raise exceptions.NotFound("There is no such API URL; see /api/schema/.")


def form_or_400(form):
    """Validate with the same Django form the page uses, so a rule lives once; 400 with its errors."""
    if not form.is_valid():
        errors = {field: [e["message"] for e in errs] for field, errs in form.errors.get_json_data().items()}
        raise DjangoValidationError(errors)
    return form.cleaned_data


def accepted(data, location: str) -> Response:
    """202: the work is queued; poll the status resource at Location."""
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})
