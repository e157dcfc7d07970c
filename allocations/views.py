from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from portal.cloud import quotas
from portal.cloud.errors import CloudError

from . import charts, credentials, selectors, services
from .forms import AllocationRequestForm, CredentialForm, MemberAddForm
from .models import ApplicationCredential


def allocation_list(request):
    allocations = list(selectors.allocation_list_for_user(user=request.user))
    summaries = selectors.allocation_summaries(allocations=allocations)
    rows = [{"allocation": a, "summary": summaries[a.pk]} for a in allocations]
    return render(request, "allocations/list.html", {"rows": rows})


def allocation_request(request):
    form = AllocationRequestForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            allocation = services.allocation_request(pi=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Your request “{allocation.title}” was sent for review.")
            return redirect("allocations:detail", pk=allocation.pk)
    return render(request, "allocations/request.html", {"form": form})


def allocation_detail(request, pk: int):
    allocation = selectors.allocation_get_for_user(user=request.user, pk=pk)
    summary = selectors.allocation_summary(allocation=allocation)
    daily = selectors.allocation_daily_usage(allocation=allocation, days=30)
    used_in_window = sum((sus for _, sus in daily), start=0)
    chart = charts.usage_chart_svg(daily=daily, awarded=summary.awarded, used_before=summary.used - used_in_window)
    ledger = Paginator(selectors.ledger_page(allocation=allocation), 25).get_page(request.GET.get("page"))
    membership = selectors.membership_get(user=request.user, allocation=allocation)
    context = {
        "allocation": allocation, "summary": summary, "chart": chart, "ledger": ledger,
        "members": selectors.allocation_member_usage(allocation=allocation),
        "can_manage": membership is not None and membership.can_manage, "member_form": MemberAddForm(),
    }
    if request.htmx and request.GET.get("page"):
        return render(request, "allocations/detail.html#ledger", context)
    return render(request, "allocations/detail.html", context)


def allocation_quota(request, pk: int):
    """The project's quota usage, loaded after the page so a slow cloud never blocks it."""
    allocation = selectors.allocation_get_for_user(user=request.user, pk=pk)
    usage, error = [], ""
    if allocation.openstack_project_id:
        try:
            usage = quotas.project_quota_usage(project_id=allocation.openstack_project_id)
        except CloudError as exc:
            error = str(exc)
    return render(request, "allocations/detail.html#quota", {"allocation": allocation, "quota": usage,
                                                             "quota_error": error})


def _managed_allocation(request, pk):
    allocation = selectors.allocation_get_for_user(user=request.user, pk=pk)
    membership = selectors.membership_get(user=request.user, allocation=allocation)
    if not (membership and membership.can_manage):
        raise PermissionDenied("Only the PI and managers can change members.")
    return allocation


@require_POST
def member_add(request, pk: int):
    allocation = _managed_allocation(request, pk)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            services.membership_add(allocation=allocation, user=form.cleaned_data["user"],
                                    role=form.cleaned_data["role"], by=request.user)
            messages.success(request, f"{form.cleaned_data['email']} was added to {allocation.title}.")
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    else:
        messages.error(request, " ".join(e for errs in form.errors.values() for e in errs))
    return redirect("allocations:detail", pk=allocation.pk)


@require_POST
def member_remove(request, pk: int, membership_id: int):
    allocation = _managed_allocation(request, pk)
    membership = get_object_or_404(allocation.memberships.select_related("user"), pk=membership_id)
    try:
        services.membership_remove(membership=membership, by=request.user)
        messages.success(request, f"{membership.user.email} was removed; their access to the project ends now.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("allocations:detail", pk=allocation.pk)


SECRET_SESSION_KEY = "app-credential-secrets"


def credential_list(request):
    allocations = list(selectors.allocation_list_usable_for_user(user=request.user))
    form = CredentialForm(request.POST or None, allocations=allocations)
    created = None
    if request.method == "POST" and form.is_valid():
        allocation = next(a for a in allocations if a.pk == form.cleaned_data["allocation"])
        try:
            created, secret = credentials.credential_create(
                user=request.user, allocation=allocation, name=form.cleaned_data["name"],
                expires_in_days=form.cleaned_data["expires_in_days"])
        except (CloudError, PermissionDenied) as exc:
            form.add_error(None, str(exc))
        else:
            # Kept in the (server-side) session only until downloaded; the portal never stores it.
            request.session.setdefault(SECRET_SESSION_KEY, {})[str(created.pk)] = secret
            request.session.modified = True
            messages.success(request, f"Application credential {created.name} created. Download it now: "
                                      "the secret is shown only once.")
    existing = ApplicationCredential.objects.filter(user=request.user).select_related("allocation")
    return render(request, "allocations/credentials.html", {
        "form": form, "credentials": existing, "created": created,
        "secret": request.session.get(SECRET_SESSION_KEY, {}).get(str(created.pk)) if created else None,
        "allocations": allocations})


def _credential_with_secret(request, pk):
    credential = get_object_or_404(ApplicationCredential.objects.select_related("allocation"), pk=pk,
                                   user=request.user)
    secret = request.session.get(SECRET_SESSION_KEY, {}).get(str(pk))
    if not secret:
        raise Http404("The secret of this credential is no longer available; create a new credential.")
    return credential, secret


def credential_download(request, pk: int, fmt: str):
    if fmt not in ("clouds.yaml", "openrc.sh"):
        raise Http404("Unknown download.")
    credential, secret = _credential_with_secret(request, pk)
    if fmt == "clouds.yaml":
        body, ctype = credentials.clouds_yaml(credential=credential, secret=secret), "application/x-yaml"
    else:
        body, ctype = credentials.openrc(credential=credential, secret=secret), "text/x-shellscript"
    response = HttpResponse(body, content_type=ctype)
    response["Content-Disposition"] = f'attachment; filename="{fmt}"'
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def credential_delete(request, pk: int):
    credential = get_object_or_404(ApplicationCredential, pk=pk, user=request.user)
    try:
        credentials.credential_delete(credential=credential)
        request.session.get(SECRET_SESSION_KEY, {}).pop(str(pk), None)
        request.session.modified = True
        messages.success(request, f"Application credential {credential.name} was deleted.")
    except CloudError as exc:
        messages.error(request, str(exc))
    return redirect("allocations:credentials")
