"""What the apps add to the pages and metrics portal/ serves, registered from each AppConfig.ready().

portal/ imports no app (tests/portal/test_layering.py checks it): the apps import portal, never
the other way. So the shared pieces are composed from what the apps register here:

- navigation entries: the menu of base.html (`portal.context_processors`);
- dashboard panels: templates included in order on `/`, each with the context it reads;
- activity sources: the sentences of the dashboard's recent activity (`portal.selectors`);
- metric collectors read at scrape time, and observers of finished Celery tasks (`portal.observability`).

An app removed from INSTALLED_APPS takes its menu entries, panels and metrics with it. Registering
again under the same key replaces the entry, so a second `ready()` (tests) changes nothing.
Nothing here imports Django models: `portal.observability` loads this while settings are read.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def signed_in(user) -> bool:
    return bool(user is not None and user.is_authenticated)


@dataclass(frozen=True)
class NavEntry:
    """A menu entry. An entry whose url name does not resolve (None, or a section whose pages are
    not built yet) shows disabled; an entry with children is a dropdown leading to its first child."""

    label: str
    url_name: str | None
    order: int
    visible: Callable[[Any], bool] = signed_in  # who sees it: the request's user -> bool
    children: tuple[NavEntry, ...] = ()


@dataclass(frozen=True)
class DashboardPanel:
    """A template included on the dashboard. `context(user=...)` returns the keys it reads; all
    panels' keys are merged into one context, so a panel may read another's (an app's panel may
    read the keys of the apps it depends on). `slot` is "header" (beside the title) or "main"."""

    name: str
    order: int
    template: str
    context: Callable[..., dict]
    slot: str = "main"


_navigation: dict[str, NavEntry] = {}
_panels: dict[str, DashboardPanel] = {}
_activity_sources: dict[str, Callable[..., list]] = {}
_collectors: dict[str, Any] = {}
_task_observers: dict[tuple[str, str], Callable[..., None]] = {}


def add_nav_entry(entry: NavEntry) -> None:
    _navigation[entry.label] = entry


def navigation() -> list[NavEntry]:
    return sorted(_navigation.values(), key=lambda e: (e.order, e.label))


def add_dashboard_panel(panel: DashboardPanel) -> None:
    _panels[panel.name] = panel


def dashboard_panels() -> list[DashboardPanel]:
    return sorted(_panels.values(), key=lambda p: (p.order, p.name))


def add_activity_source(name: str, source: Callable[..., list]) -> None:
    """`source(user=..., since=...)` returns `portal.selectors.Activity` rows: the newest of its
    kind and the unread failures since `since` (`portal.selectors.relevant_rows` picks them)."""
    _activity_sources[name] = source


def activity_sources() -> list[Callable[..., list]]:
    return [_activity_sources[name] for name in sorted(_activity_sources)]


def add_collector(name: str, collector) -> None:
    """A prometheus_client collector (an object with `collect()`) run at every /metrics scrape."""
    _collectors[name] = collector


def collectors() -> list:
    return [_collectors[name] for name in sorted(_collectors)]


def add_task_observer(task_name: str, observer: Callable[..., None], *, key: str = "") -> None:
    """`observer(state=..., seconds=...)` is called in the worker once a task of that name ends."""
    _task_observers[(task_name, key or getattr(observer, "__qualname__", repr(observer)))] = observer


def task_observers(task_name: str) -> list[Callable[..., None]]:
    return [fn for (name, _), fn in sorted(_task_observers.items(), key=lambda kv: kv[0]) if name == task_name]
