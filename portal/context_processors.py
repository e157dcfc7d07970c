from django.conf import settings
from django.urls import NoReverseMatch, reverse

# (label, url name); sections whose pages have not been built yet show as disabled.
NAVIGATION = [
    ("Dashboard", "dashboard"),
    ("Instances", "instances:list"),
    ("Volumes", "instances:volumes"),
    ("Clusters", "clusters:list"),
    ("Classes", "classes:list"),
    ("Allocations", "allocations:list"),
    ("Credentials", "allocations:credentials"),
]


def _navigation(request):
    items = []
    for label, name in NAVIGATION:
        try:
            url = reverse(name)
        except NoReverseMatch:
            url = None
        active = bool(url) and (request.path == url if url == "/" else request.path.startswith(url))
        items.append({"label": label, "url": url, "active": active})
    return items


def portal(request):
    return {"portal_name": settings.PORTAL_NAME, "navigation": _navigation(request)}
