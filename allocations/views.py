from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from portal.cloud import quotas
from portal.cloud.errors import CloudError
from portal.htmx import is_partial

from . import charts, credentials, invitations, selectors, services
from .forms import AllocationRequestForm, CredentialForm, MemberAddForm
from .models import ApplicationCredential
from .scopes import NoCloudAccess, member_scope


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


def allocation_detail(request, pk: int, member_form: MemberAddForm | None = None):
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
        "can_manage": membership is not None and membership.can_manage, "member_form": member_form or MemberAddForm(),
        "regions": allocation.regions.order_by("region_name"),
    }
    ledger_only = request.GET.get("page") and is_partial(request)  # the ledger's pager swaps only the ledger
    return render(request, "allocations/detail.html#ledger" if ledger_only else "allocations/detail.html", context)


def allocation_quota(request, pk: int):
    """The project's quota usage, loaded after the page so a slow cloud never blocks it."""
    allocation = selectors.allocation_get_for_user(user=request.user, pk=pk)
    usage, error = [], ""
    if allocation.openstack_project_id:
        try:
            usage = quotas.project_quota_usage(scope=member_scope(user=request.user, allocation=allocation))
        except (CloudError, NoCloudAccess) as exc:
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
    """One or several addresses: verified accounts join now, anyone else is invited by email."""
    allocation = _managed_allocation(request, pk)
    form = MemberAddForm(request.POST)
    if form.is_valid():
        try:
            outcome = invitations.members_invite(
                allocation=allocation, emails=form.cleaned_data["emails"], role=form.cleaned_data["role"],
                by=request.user, base_url=request.build_absolute_uri("/"))
        except ValidationError as exc:
            form.add_error("email", exc)
        else:
            messages.success(request, outcome.summary)
            return redirect(reverse("allocations:detail", args=[allocation.pk]) + "#members")
    # The page again, with the errors under the field and what was typed still in it.
    return allocation_detail(request, pk, member_form=form)


@require_POST
def member_remove(request, pk: int, membership_id: int):
    allocation = _managed_allocation(request, pk)
    membership = get_object_or_404(allocation.memberships.select_related("user"), pk=membership_id)
    try:
        services.membership_remove(membership=membership, by=request.user)
        messages.success(request, f"{membership.user.email} was removed; their access to the project ends now.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(reverse("allocations:detail", args=[allocation.pk]) + "#members")


@require_POST
def invitation_revoke(request, pk: int, invitation_id: int):
    allocation = _managed_allocation(request, pk)
    invitation = get_object_or_404(allocation.invitations, pk=invitation_id)
    try:
        invitations.invitation_revoke(invitation=invitation, by=request.user)
        messages.success(request, f"The invitation to {invitation.email} was withdrawn; its link no longer works.")
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect(reverse("allocations:detail", args=[allocation.pk]) + "#members")


@login_not_required
def invitation_open(request, token: str):
    """The link in the invitation mail. Anyone may open it; it binds only to an account that has
    verified the invited address (a forwarded link alone gives nothing), so after signing up the
    person still confirms the address by mail, and the confirmation makes them a member."""
    invitation = invitations.invitation_for_token(token=token)
    if invitation is None:
        return render(request, "allocations/invitation.html", {"problem": "This invitation link is not valid. "
                      "Check that the whole link was copied, or ask for a new invitation."}, status=404)
    context = {"invitation": invitation, "allocation": invitation.allocation,
               "problem": invitations.invitation_problem(invitation)}
    if context["problem"]:
        return render(request, "allocations/invitation.html", context)
    if not request.user.is_authenticated:
        here = reverse("allocations:invitation_open", args=[token])
        context["signup_url"] = f"{reverse('account_signup')}?{urlencode({'email': invitation.email, 'next': here})}"
        context["login_url"] = f"{reverse('account_login')}?{urlencode({'next': here})}"
        return render(request, "allocations/invitation.html", context)
    if request.method == "POST":
        try:
            invitations.invitation_accept(invitation=invitation, user=request.user)
        except ValidationError as exc:
            context["problem"] = " ".join(exc.messages)
        else:
            messages.success(request, f"You joined “{invitation.allocation.title}”.")
            return redirect("allocations:detail", pk=invitation.allocation.pk)
    elif not invitations.user_holds_email(user=request.user, email=invitation.email):
        context["problem"] = (f"This invitation is for {invitation.email}, and you are signed in as "
                              f"{request.user.email}. Sign out and sign in (or sign up) with {invitation.email}, or "
                              "add that address to your account under Email addresses and confirm it.")
    return render(request, "allocations/invitation.html", context)


def credential_list(request):
    """The list and the create form. The response that creates a credential is the only place its
    secret ever appears: on the page and behind one-time download links (clouds.yaml, openrc.sh, main.tf)."""
    allocations = list(selectors.allocation_list_usable_for_user(user=request.user))
    form = CredentialForm(request.POST or None, allocations=allocations)
    created = secret = downloads = starter = None
    if request.method == "POST" and form.is_valid():
        allocation = selectors.allocation_pick(user=request.user, pk=form.cleaned_data["allocation"],
                                               among=allocations)
        try:
            created, secret = credentials.credential_create(
                user=request.user, allocation=allocation, name=form.cleaned_data["name"],
                expires_in_days=form.cleaned_data["expires_in_days"])
        except (CloudError, PermissionDenied) as exc:
            form.add_error(None, str(exc))
        else:
            starter = credentials.terraform_choices_or_blank(user=request.user, allocation=allocation)
            tokens = credentials.credential_download_tokens_issue(credential=created, secret=secret,
                                                                  terraform=starter)
            downloads = [{"filename": fmt, "url": reverse("allocations:credential_download", args=[token])}
                         for fmt, token in tokens.items()]
            form = CredentialForm(allocations=allocations)
    existing = ApplicationCredential.objects.filter(user=request.user).select_related("allocation")
    response = render(request, "allocations/credentials.html", {
        "form": form, "credentials": existing, "created": created, "secret": secret, "downloads": downloads,
        "starter": starter,
        "download_minutes": credentials.DOWNLOAD_TTL_SECONDS // 60, "allocations": allocations})
    if secret:
        response["Cache-Control"] = "no-store"
    return response


def credential_download(request, token: str):
    """One file of a new credential, once: the link stops working when used (or after minutes)."""
    download = credentials.credential_download_redeem(token=token, user=request.user)
    if download is None:
        raise Http404("This download link was used already or has expired. Create a new credential.")
    response = HttpResponse(download.body, content_type=download.content_type)
    response["Content-Disposition"] = f'attachment; filename="{download.filename}"'
    response["Cache-Control"] = "no-store"
    return response


@require_POST
def credential_delete(request, pk: int):
    credential = get_object_or_404(ApplicationCredential, pk=pk, user=request.user)
    try:
        credentials.credential_delete(credential=credential)
        messages.success(request, f"Application credential {credential.name} was deleted.")
    except CloudError as exc:
        messages.error(request, str(exc))
    return redirect("allocations:credentials")
