"""What instances adds to the dashboard: the projects panel, the Launch button, and the launches
and actions on instances and volumes as sentences in the recent activity (`portal.selectors`)."""
from __future__ import annotations

from django.urls import reverse

from portal.models import OperationState
from portal.registry import DashboardPanel
from portal.selectors import Activity, asked_by, clause, relevant_rows, sentence, words

from .models import CloudAction, Instance, LaunchRequest
from .selectors import dashboard_for_user

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


def action_verbs(*, action: str, target_type: str = "server") -> tuple[str, str]:
    table = VOLUME_VERBS if target_type == "volume" else SERVER_VERBS
    said = words(action)
    return table.get(action, (f"Running “{said}” on", f"Ran “{said}” on"))


def action_label(*, action: str, target_type: str = "server") -> str:
    """"floating_ip_assign" -> "Assign public IP": words for a history row or a button."""
    if target_type != "volume":
        from .services.actions import ACTIONS

        if action in ACTIONS:
            return ACTIONS[action].label
    return words(action).capitalize()


def action_activities(*, user, since) -> list[Activity]:
    rows = relevant_rows(CloudAction.objects.filter(allocation__memberships__user=user, dismissed_at__isnull=True)
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
        found.append(Activity(sentence(doing, done, what, row.state, row.step), clause(row.error), row.state,
                              row.created_at, url, asked_by(row, user), row.allocation.title, dismiss))
    return found


def _launch_what(row) -> str:
    names = row.name if row.count == 1 else f"{row.server_name(1)}…{row.server_name(row.count)}"
    return f"{row.count} × {row.flavor_name} ({names})"


def launch_activities(*, user, since) -> list[Activity]:
    rows = relevant_rows(LaunchRequest.objects.filter(allocation__memberships__user=user)
                         .select_related("requested_by", "allocation"), since)
    found = []
    for row in rows:
        if row.state == OperationState.FAILED and row.failed_step:
            # The servers run; a later step (a public IP, say) did not: the reason says which.
            text = f"Launched {_launch_what(row)}, but one step failed"
        else:
            text = sentence("Launching", "Launched", _launch_what(row), row.state, row.step)
        found.append(Activity(text, clause(row.error), row.state, row.created_at,
                              reverse("instances:launch_detail", args=[row.pk]), asked_by(row, user),
                              row.allocation.title))
    return found


# The Launch button reads `usable_allocations`, and the projects panel `has_allocations`, from
# the allocations panel (allocations.dashboard).
PANELS = (
    DashboardPanel("instances.launch", order=20, template="instances/_dashboard_launch.html",
                   context=lambda **kw: {}, slot="header"),
    DashboardPanel("instances.projects", order=20, template="instances/_dashboard.html", context=dashboard_for_user),
)
ACTIVITY_SOURCES = {"instances.actions": action_activities, "instances.launches": launch_activities}
