from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from . import selectors
from .health import CHECKS


def dashboard(request):
    from instances.selectors import dashboard_for_user

    return render(request, "portal/dashboard.html", {
        "operations": selectors.operation_list_recent(user=request.user, limit=10),
        **dashboard_for_user(user=request.user),
    })


@login_not_required
@never_cache
@require_GET
def healthz(request):
    """200 when the database, Redis and the cloud all answer; 503 naming what does not."""
    problems = {name: reason for name, check in CHECKS.items() if (reason := check())}
    body = {name: ("ok" if name not in problems else problems[name]) for name in CHECKS}
    body["status"] = "ok" if not problems else "unhealthy"
    return JsonResponse(body, status=200 if not problems else 503)
