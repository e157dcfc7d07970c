"""The base every API view shares: authentication, scope checks, problem details, throttling."""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from ..common import TokenRateThrottle
from ..permissions import TokenScopePermission


class ApiView(APIView):
    permission_classes = [TokenScopePermission]
    throttle_classes = [TokenRateThrottle]

    @classmethod
    def as_view(cls, **initkwargs):
        # A token request has no session: DRF authenticates it, so the site-wide login redirect
        # must not answer first (DRF answers 401 problem details instead).
        view = super().as_view(**initkwargs)
        view.login_required = False
        return view


def form_or_400(form):
    """Validate with the same Django form the page uses, so a rule lives once; 400 with its errors."""
    if not form.is_valid():
        errors = {field: [e["message"] for e in errs] for field, errs in form.errors.get_json_data().items()}
        raise DjangoValidationError(errors)
    return form.cleaned_data


def accepted(data, location: str) -> Response:
    """202: the work is queued; poll the status resource at Location."""
    return Response(data, status=status.HTTP_202_ACCEPTED, headers={"Location": location})
