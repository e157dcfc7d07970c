from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_safe

from . import registry
from .health import CHECKS


@login_not_required
@require_safe
def dashboard(request):
    """`/`: what the portal is, for visitors; once signed in, the panels the apps register."""
    if not request.user.is_authenticated:
        return render(request, "portal/landing.html")
    panels = registry.dashboard_panels()
    context = {}
    for panel in panels:
        context.update(panel.context(user=request.user))
    return render(request, "portal/dashboard.html", {
        **context, "header_panels": [p for p in panels if p.slot == "header"],
        "panels": [p for p in panels if p.slot == "main"],
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
