"""Human words for internal names in templates: `{{ action|action_label }}` ("Assign public IP",
never "Floatingipassign"), `{{ row|status_words }}` ("in progress" for a running status row)."""
from django import template

from portal import selectors

register = template.Library()


@register.filter
def action_label(action) -> str:
    """A CloudAction row, or an action name (server actions), as the words its button shows."""
    if hasattr(action, "action"):
        return selectors.action_label(action=action.action, target_type=action.target_type)
    return selectors.action_label(action=str(action))


@register.filter
def status_words(row) -> str:
    """A status row's state as words ("waiting", "in progress", "done", "failed", "cancelled")."""
    state = getattr(row, "state", row)
    return selectors.STATE_WORDS.get(state, str(state).replace("_", " "))
