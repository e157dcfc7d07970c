from django.conf import settings
from django.urls import NoReverseMatch, reverse

from . import registry


def _url(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return reverse(name)
    except NoReverseMatch:  # a section whose pages are not built yet: shown disabled
        return None


def _under(path: str, url: str | None) -> bool:
    return bool(url) and (path == url if url == "/" else path.startswith(url))


def _item(entry: registry.NavEntry, request, user) -> dict:
    """A menu entry as the template shows it; a dropdown is active on any of its pages, its
    items on their own page only."""
    url = _url(entry.url_name)
    children = [{"label": c.label, "url": u, "active": request.path == u}
                for c in entry.children if c.visible(user) and (u := _url(c.url_name))]
    if children:
        return {"label": entry.label, "url": url or children[0]["url"], "children": children,
                "active": any(_under(request.path, c["url"]) for c in children)}
    return {"label": entry.label, "url": url, "children": [], "active": _under(request.path, url)}


def _navigation(request) -> list[dict]:
    user = getattr(request, "user", None)
    return [_item(entry, request, user) for entry in registry.navigation() if entry.visible(user)]


def portal(request):
    return {"portal_name": settings.PORTAL_NAME, "navigation": _navigation(request)}
