"""The members section's pending invitations, read where the section is drawn (the detail view
belongs to the allocation page; this keeps the members part self-contained)."""
from django import template

from allocations import invitations

register = template.Library()


@register.simple_tag
def open_invitations(allocation):
    return invitations.invitations_open(allocation=allocation)
