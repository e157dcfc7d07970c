"""Reads for the dashboard: the person's allocations as they stand, and recent activity in words.

Activity merges the three kinds of status rows a person meets (launches, actions on instances
and volumes, allocation operations) into one list of sentences, failures first, so nothing the
portal did for them fails where only Django admin would show it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from .models import Operation, OperationState

# How long an unread failure stays pinned at the top (dismissed ones leave at once).
PINNED_FAILURES = timedelta(days=14)
# How long the outcome of a review stays on the dashboard (it stays on the allocation's page).
REVIEW_NEWS = timedelta(days=30)

# action -> (while it runs, once done), each followed by the object's kind and name.
SERVER_VERBS = {
    "start": ("Starting", "Started"), "stop": ("Stopping", "Stopped"),
    "reboot_soft": ("Rebooting", "Rebooted"), "reboot_hard": ("Hard-rebooting", "Hard-rebooted"),
    "suspend": ("Suspending", "Suspended"), "resume": ("Resuming", "Resumed"),
    "shelve": ("Shelving", "Shelved"), "unshelve": ("Unshelving", "Unshelved"),
    "resize": ("Resizing", "Resized"), "resize_confirm": ("Confirming the resize of", "Confirmed the resize of"),
    "resize_revert": ("Reverting the resize of", "Reverted the resize of"),
    "lock": ("Locking", "Locked"), "unlock": ("Unlocking", "Unlocked"),
    "image_create": ("Making an image of", "Made an image of"),
    "floating_ip_assign": ("Assigning a public IP to", "Assigned a public IP to"),
    "floating_ip_release": ("Releasing the public IP of", "Released the public IP of"),
    "delete": ("Deleting", "Deleted"),
}
VOLUME_VERBS = {
    "create": ("Creating", "Created"), "attach": ("Attaching", "Attached"), "detach": ("Detaching", "Detached"),
    "extend": ("Extending", "Extended"), "snapshot": ("Taking a snapshot of", "Took a snapshot of"),
    "delete": ("Deleting", "Deleted"),
}
OPERATION_VERBS = {
    "allocation.provision": ("Setting up the project for", "Set up the project for"),
    "allocation.close": ("Closing the project of", "Closed the project of"),
    "membership.grant": ("Giving {email} access to", "Gave {email} access to"),
    "membership.revoke": ("Removing {email}'s access to", "Removed {email}'s access to"),
    "allocation.restore_quotas": ("Restoring the quotas of", "Restored the quotas of"),
    "allocation.flavor_access": ("Updating the flavors open to", "Updated the flavors open to"),
}
STATE_WORDS = {OperationState.QUEUED: "waiting", OperationState.RUNNING: "in progress",
               OperationState.SUCCEEDED: "done", OperationState.FAILED: "failed",
               OperationState.CANCELLED: "cancelled"}


def _words(name: str) -> str:
    """A name we have no sentence for, as words: "floating_ip.assign" -> "floating ip assign"."""
    return name.replace(".", " ").replace("_", " ").strip()


def action_verbs(*, action: str, target_type: str = "server") -> tuple[str, str]:
    table = VOLUME_VERBS if target_type == "volume" else SERVER_VERBS
    words = _words(action)
    return table.get(action, (f"Running “{words}” on", f"Ran “{words}” on"))


def action_label(*, action: str, target_type: str = "server") -> str:
    """"floating_ip_assign" -> "Assign public IP": words for a history row or a button."""
    if target_type != "volume":
        from instances.services.actions import ACTIONS

        if action in ACTIONS:
            return ACTIONS[action].label
    return _words(action).capitalize()


@dataclass(frozen=True)
class Activity:
    text: str  # "Creating volume data-1 failed"
    reason: str  # the row's error in words, "" when none
    state: str  # an OperationState value
    when: datetime
    url: str = ""
    by: str = ""  # who asked, when it was someone else
    where: str = ""  # the allocation's title
    dismiss_url: str = ""  # where a failure is put away, when it can be

    @property
    def failed(self) -> bool:
        return self.state == OperationState.FAILED

    @property
    def state_words(self) -> str:
        return STATE_WORDS.get(self.state, self.state)


def _sentence(doing: str, done: str, what: str, state: str, step: str = "") -> str:
    if state == OperationState.SUCCEEDED:
        return f"{done} {what}"
    if state == OperationState.FAILED:
        return f"{doing} {what} failed"
    if state == OperationState.CANCELLED:
        return f"{doing} {what} was cancelled"
    return f"{doing} {what}…" + (f" ({_words(step)})" if step and state == OperationState.RUNNING else "")


_NAMES = frozenset({"Nova", "Cinder", "Neutron", "Keystone", "Glance", "Placement", "Horizon", "OpenStack"})


def _clause(text: str) -> str:
    """An error to follow "…failed: ": its first word lowercased unless it is a name ("IP", "Nova")."""
    text = (text or "").strip()
    first = text.split(" ", 1)[0].rstrip(",.:;")
    if len(first) > 1 and first[0].isupper() and first[1:].islower() and first not in _NAMES:
        text = text[0].lower() + text[1:]
    return text


def _who(row, user) -> str:
    asker = row.requested_by
    return "" if asker is None or asker.pk == user.pk else (asker.email or asker.get_username())


def _relevant(qs, since):
    """Recent rows, plus unread failures of the last days (pinned above them)."""
    recent = list(qs.order_by("-created_at")[:20])
    failures = list(qs.filter(state=OperationState.FAILED, created_at__gte=since).order_by("-created_at")[:20])
    seen = {r.pk for r in recent}
    return recent + [r for r in failures if r.pk not in seen]


def _action_activities(*, user, since) -> list[Activity]:
    from instances.models import CloudAction, Instance

    rows = _relevant(CloudAction.objects.filter(allocation__memberships__user=user, dismissed_at__isnull=True)
                     .select_related("requested_by", "allocation"), since)
    server_ids = {r.target_id for r in rows if r.target_type == "server"} | {
        r.params.get("server_id") for r in rows if r.target_type == "volume" and r.params.get("server_id")}
    instances = {sid: (pk, name) for sid, pk, name in Instance.objects.filter(
        server_id__in=server_ids, deleted_at__isnull=True).values_list("server_id", "pk", "name")}
    volumes_url = reverse("instances:volumes")
    found = []
    for row in rows:
        doing, done = action_verbs(action=row.action, target_type=row.target_type)
        noun = "volume" if row.target_type == "volume" else "instance"
        what = f"{noun} {row.target_name or row.target_id[:8]}"
        if row.action == "attach" and row.params.get("server_id") in instances:
            what += f" to {instances[row.params['server_id']][1]}"
        elif row.action == "extend" and row.params.get("size_gb"):
            what += f" to {row.params['size_gb']:,} GB"
        if row.target_type == "volume":
            url = f"{volumes_url}?project={row.allocation_id}"
        else:
            url = reverse("instances:detail", args=[instances[row.target_id][0]]) if row.target_id in instances else ""
        dismiss = ""
        if row.target_type == "volume" and row.state == OperationState.FAILED:
            dismiss = reverse("instances:volume_action_dismiss", args=[row.pk])
        found.append(Activity(_sentence(doing, done, what, row.state, row.step), _clause(row.error), row.state,
                              row.created_at, url, _who(row, user), row.allocation.title, dismiss))
    return found


def _launch_what(row) -> str:
    names = row.name if row.count == 1 else f"{row.server_name(1)}…{row.server_name(row.count)}"
    return f"{row.count} × {row.flavor_name} ({names})"


def _launch_activities(*, user, since) -> list[Activity]:
    from instances.models import LaunchRequest

    rows = _relevant(LaunchRequest.objects.filter(allocation__memberships__user=user)
                     .select_related("requested_by", "allocation"), since)
    found = []
    for row in rows:
        if row.state == OperationState.FAILED and row.failed_step:
            # The servers run; a later step (a public IP, say) did not: the reason says which.
            text = f"Launched {_launch_what(row)}, but one step failed"
        else:
            text = _sentence("Launching", "Launched", _launch_what(row), row.state, row.step)
        found.append(Activity(text, _clause(row.error), row.state, row.created_at,
                              reverse("instances:launch_detail", args=[row.pk]), _who(row, user),
                              row.allocation.title))
    return found


def _allocation_pk(target: str) -> int | None:
    kind, _, ident = target.partition(":")
    return int(ident) if kind == "allocation" and ident.isdigit() else None


def _operation_activities(*, user, since) -> list[Activity]:
    from allocations.models import Allocation

    mine = set(Allocation.objects.filter(memberships__user=user).values_list("pk", flat=True))
    rows = _relevant(Operation.objects.filter(Q(requested_by=user) | Q(target__in=[f"allocation:{pk}" for pk in mine]))
                     .select_related("requested_by"), since)
    titles = dict(Allocation.objects.filter(pk__in={_allocation_pk(r.target) for r in rows} - {None})
                  .values_list("pk", "title"))
    found = []
    for row in rows:
        pk = _allocation_pk(row.target)
        words = _words(row.kind)
        doing, done = OPERATION_VERBS.get(row.kind, (words.capitalize(), words.capitalize()))
        email = (row.params or {}).get("email") or "a member"
        doing, done = doing.replace("{email}", email), done.replace("{email}", email)
        what = f"“{titles[pk]}”" if pk in titles else ""
        url = reverse("allocations:detail", args=[pk]) if pk in mine else ""
        found.append(Activity(" ".join(_sentence(doing, done, what, row.state, row.step).split()),
                              _clause(row.error), row.state, row.created_at, url, _who(row, user),
                              titles.get(pk, "")))
    return found


def activity_for_user(*, user, limit: int = 12) -> list[Activity]:
    """What the portal did in the person's allocations, in words: failures of the last days that
    nobody dismissed first, then the newest of everything."""
    since = timezone.now() - PINNED_FAILURES
    rows = (_action_activities(user=user, since=since) + _launch_activities(user=user, since=since)
            + _operation_activities(user=user, since=since))
    rows.sort(key=lambda a: a.when, reverse=True)
    pinned = [a for a in rows if a.failed and a.when >= since]
    rest = [a for a in rows if not (a.failed and a.when >= since)]
    return (pinned + rest)[:limit]


# --- The person's allocations, for a dashboard that leads ------------------------------------


def dashboard_allocations(*, user) -> dict:
    """Requests waiting for review, reviews of the last days (award and note), and whether the
    person belongs to any allocation at all (if not, the dashboard leads to requesting one)."""
    from allocations.models import Allocation, AllocationStatus

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
