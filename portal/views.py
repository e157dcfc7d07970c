from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_safe

from . import selectors
from .health import CHECKS


@login_not_required
@require_safe
def dashboard(request):
    """`/`: what the portal is, for visitors; the person's own dashboard once signed in."""
    if not request.user.is_authenticated:
        return render(request, "portal/landing.html")
    from instances.selectors import dashboard_for_user

    return render(request, "portal/dashboard.html", {
        **selectors.dashboard_allocations(user=request.user),
        "activity": selectors.activity_for_user(user=request.user, limit=12),
        **dashboard_for_user(user=request.user),
    })


@login_not_required
@never_cache
@require_GET
def healthz(request):
    """200 when the database, Redis and the cloud all answer; 503 naming (only naming) what does not."""
    healthy = {name: check() for name, check in CHECKS.items()}
    failing = [name for name, ok in healthy.items() if not ok]
    body = {name: ("ok" if ok else "failing") for name, ok in healthy.items()}
    body.update(status="unhealthy" if failing else "ok", failing=failing)
    return JsonResponse(body, status=503 if failing else 200)
