"""Human words for internal names in templates: `{{ row|status_words }}` ("in progress" for a
running status row), `{{ instance.status|status_label }}` ("resized: confirm or revert", never
"verify_resize"). An action's label is the app's own (`instance_words`)."""
from django import template
from django.utils.html import format_html
from django.utils.safestring import mark_safe

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


_SETTLED_GOOD = frozenset({"ACTIVE", "available", "in-use", "succeeded"})
_SETTLED_IDLE = frozenset({"SHUTOFF", "SUSPENDED", "PAUSED", "SHELVED", "SHELVED_OFFLOADED", "cancelled"})
_SETTLED_BAD = frozenset({"ERROR", "failed"})
_SPINNER = mark_safe(' <span class="spinner-border spinner-border-sm" aria-hidden="true" '
                     'style="width:.6rem;height:.6rem"></span>')


@register.simple_tag
def status_badge(status, task_state="") -> str:
    """The coloured pill for a cloud status or a status row's state, in words, with a spinner while
    it is changing: `{% status_badge i.status i.task_state %}`. A tag rather than an included
    template: the instance list draws one per row, and an include costs ten times as much."""
    s = str(status or "")
    if s in _SETTLED_GOOD:
        colour = "text-bg-success"
    elif s in _SETTLED_BAD or s.startswith("error"):
        colour = "text-bg-danger"
    elif s in _SETTLED_IDLE:
        colour = "text-bg-secondary"
    else:
        colour = "text-bg-warning"
    words = f"{status_label(s)} ({status_label(task_state)})" if task_state else status_label(s)
    changing = task_state or colour == "text-bg-warning"  # not settled in any of the three ways
    return format_html('<span class="badge rounded-pill {}" data-testid="status">{}{}</span>', colour, words,
                       _SPINNER if changing else "")
