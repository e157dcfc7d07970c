"""`{{ action|action_label }}`: a CloudAction row, or a server action's name, as the words its
button shows ("Assign public IP", never "Floatingipassign")."""
from django import template

from instances.dashboard import action_label as _label

register = template.Library()


@register.filter
def action_label(action) -> str:
    if hasattr(action, "action"):
        return _label(action=action.action, target_type=action.target_type)
    return _label(action=str(action))
