"""Whether a request wants a fragment: one answer for every view (django-htmx sets `request.htmx`).

A view renders its template's named partial (`"instances/list.html#rows"`) for an htmx request
that swaps part of the page (a poll, a form, a pager link) and the whole page otherwise, a
boosted navigation included, since it replaces the whole body."""


def is_partial(request) -> bool:
    """An htmx request that is not a boosted navigation."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted


def partial_template(request, template: str, partial: str) -> str:
    """`template#partial` for a partial request (`is_partial`), else the whole `template`."""
    return f"{template}#{partial}" if is_partial(request) else template
