"""What allocations adds to the dashboard: requests waiting for review and reviews of the last
days (or, for someone in no allocation yet, the way to request one), the recent activity of the
person's allocations, and the operations on them as sentences in that activity."""
from __future__ import annotations

from datetime import timedelta

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from portal.models import Operation
from portal.registry import DashboardPanel
from portal.selectors import Activity, activity_for_user, asked_by, clause, relevant_rows, sentence, words

from .models import Allocation, AllocationStatus

# How long the outcome of a review stays on the dashboard (it stays on the allocation's page).
REVIEW_NEWS = timedelta(days=30)

OPERATION_VERBS = {
    "allocation.provision": ("Setting up the project for", "Set up the project for"),
    "allocation.close": ("Closing the project of", "Closed the project of"),
    "membership.grant": ("Giving {email} access to", "Gave {email} access to"),
    "membership.revoke": ("Removing {email}'s access to", "Removed {email}'s access to"),
    "allocation.restore_quotas": ("Restoring the quotas of", "Restored the quotas of"),
    "allocation.flavor_access": ("Updating the flavors open to", "Updated the flavors open to"),
}


def dashboard_allocations(*, user) -> dict:
    """Requests waiting for review, reviews of the last days (award and note), and whether the
    person belongs to any allocation at all (if not, the dashboard leads to requesting one)."""
    allocations = list(Allocation.objects.filter(memberships__user=user).select_related("pi")
                       .order_by("-created_at").distinct())
    waiting = (AllocationStatus.REQUESTED, AllocationStatus.UNDER_REVIEW)
    recent = timezone.now() - REVIEW_NEWS
    return {
        "has_allocations": bool(allocations),
        "pending_requests": [a for a in allocations if a.status in waiting],
        "reviewed": [a for a in allocations if a.reviewed_at and a.reviewed_at >= recent
                     and a.status not in waiting],
        "usable_allocations": [a for a in allocations if a.is_usable],
    }


def _allocation_pk(target: str) -> int | None:
    kind, _, ident = target.partition(":")
    return int(ident) if kind == "allocation" and ident.isdigit() else None


def operation_activities(*, user, since) -> list[Activity]:
    mine = set(Allocation.objects.filter(memberships__user=user).values_list("pk", flat=True))
    targets = [f"allocation:{pk}" for pk in mine]
    rows = relevant_rows(Operation.objects.filter(Q(requested_by=user) | Q(target__in=targets))
                         .select_related("requested_by"), since)
    titles = dict(Allocation.objects.filter(pk__in={_allocation_pk(r.target) for r in rows} - {None})
                  .values_list("pk", "title"))
    found = []
    for row in rows:
        pk = _allocation_pk(row.target)
        said = words(row.kind)
        doing, done = OPERATION_VERBS.get(row.kind, (said.capitalize(), said.capitalize()))
        email = (row.params or {}).get("email") or "a member"
        doing, done = doing.replace("{email}", email), done.replace("{email}", email)
        what = f"“{titles[pk]}”" if pk in titles else ""
        url = reverse("allocations:detail", args=[pk]) if pk in mine else ""
        found.append(Activity(" ".join(sentence(doing, done, what, row.state, row.step).split()),
                              clause(row.error), row.state, row.created_at, url, asked_by(row, user),
                              titles.get(pk, "")))
    return found


def dashboard_activity(*, user) -> dict:
    return {"activity": activity_for_user(user=user, limit=12)}


# The news first (or the way in, for someone in no allocation), the activity of every app last.
PANELS = (
    DashboardPanel("allocations.news", order=10, template="allocations/_dashboard.html", context=dashboard_allocations),
    DashboardPanel("allocations.activity", order=90, template="allocations/_dashboard_activity.html",
                   context=dashboard_activity),
)
ACTIVITY_SOURCES = {"allocations.operations": operation_activities}
