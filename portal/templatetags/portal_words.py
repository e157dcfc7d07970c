"""Human words for internal names in templates: `{{ row|status_words }}` ("in progress" for a
running status row), `{{ instance.status|status_label }}` ("resized: confirm or revert", never
"verify_resize"). An action's label is the app's own (`instance_words`)."""
from django import template

from portal import selectors

register = template.Library()


@register.filter
def status_words(row) -> str:
    """A status row's state as words ("waiting", "in progress", "done", "failed", "cancelled")."""
    state = getattr(row, "state", row)
    return selectors.STATE_WORDS.get(state, str(state).replace("_", " "))


# Nova and Cinder statuses and task states whose own name is not a word people use. The rest
# (active, shutoff, shelved, available, error, …) are shown as the cloud says them, lowercased,
# so the portal, Horizon and the CLI agree.
STATUS_LABELS = {
    "BUILD": "building", "VERIFY_RESIZE": "resized: confirm or revert", "REVERT_RESIZE": "reverting the resize",
    "RESIZE": "resizing", "REBOOT": "rebooting", "HARD_REBOOT": "hard rebooting", "SHELVED_OFFLOADED": "shelved",
    "SOFT_DELETED": "deleted", "RESCUE": "rescue mode", "PASSWORD": "setting the password",
    "error_extending": "error (extending failed)", "error_deleting": "error (deleting failed)",
    "error_restoring": "error (restoring failed)", "error_backing-up": "error (backup failed)",
    "in-use": "in use", "awaiting-transfer": "awaiting transfer", "backing-up": "backing up",
    "restoring-backup": "restoring a backup",
}


@register.filter
def status_label(status) -> str:
    """A cloud status or task state as words: "resize_prep" -> "resize prep", "BUILD" -> "building"."""
    status = str(status or "")
    if status in STATUS_LABELS:
        return STATUS_LABELS[status]
    return status.lower().replace("_", " ").replace("-", " ")
