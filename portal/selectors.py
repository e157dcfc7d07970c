"""Reads for the dashboard's recent activity: status rows of every kind as sentences, failures first.

The apps register where their rows come from (`portal.registry.add_activity_source`): launches and
actions on instances and volumes (instances), allocation operations (allocations). Each source
turns its rows into `Activity` sentences with the helpers here, so nothing the portal did for a
person fails where only Django admin would show it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from . import registry
from .models import OperationState

# How long an unread failure stays pinned at the top (dismissed ones leave at once).
PINNED_FAILURES = timedelta(days=14)

STATE_WORDS = {OperationState.QUEUED: "waiting", OperationState.RUNNING: "in progress",
               OperationState.SUCCEEDED: "done", OperationState.FAILED: "failed",
               OperationState.CANCELLED: "cancelled"}


def words(name: str) -> str:
    """A name we have no sentence for, as words: "floating_ip.assign" -> "floating ip assign"."""
    return name.replace(".", " ").replace("_", " ").strip()


@dataclass(frozen=True)
class Activity:
    text: str  # "Creating volume data-1 failed"
    reason: str  # the row's error in words, "" when none
    state: str  # an OperationState value
    when: datetime
    url: str = ""
    by: str = ""  # who asked, when it was someone else
    where: str = ""  # the allocation's title
    dismiss_url: str = ""  # where a failure is put away, when it can be

    @property
    def failed(self) -> bool:
        return self.state == OperationState.FAILED

    @property
    def state_words(self) -> str:
        return STATE_WORDS.get(self.state, self.state)


def sentence(doing: str, done: str, what: str, state: str, step: str = "") -> str:
    """"Creating volume data-1…", "Created volume data-1", "Creating volume data-1 failed"."""
    if state == OperationState.SUCCEEDED:
        return f"{done} {what}"
    if state == OperationState.FAILED:
        return f"{doing} {what} failed"
    if state == OperationState.CANCELLED:
        return f"{doing} {what} was cancelled"
    return f"{doing} {what}…" + (f" ({words(step)})" if step and state == OperationState.RUNNING else "")


_NAMES = frozenset({"Nova", "Cinder", "Neutron", "Keystone", "Glance", "Placement", "Horizon", "OpenStack"})


def clause(text: str) -> str:
    """An error to follow "…failed: ": its first word lowercased unless it is a name ("IP", "Nova")."""
    text = (text or "").strip()
    first = text.split(" ", 1)[0].rstrip(",.:;")
    if len(first) > 1 and first[0].isupper() and first[1:].islower() and first not in _NAMES:
        text = text[0].lower() + text[1:]
    return text


def asked_by(row, user) -> str:
    """Who asked for the row, when it was someone else than `user` ("" when it was them)."""
    asker = row.requested_by
    return "" if asker is None or asker.pk == user.pk else (asker.email or asker.get_username())


def relevant_rows(qs, since) -> list:
    """Recent rows, plus unread failures of the last days (pinned above them)."""
    recent = list(qs.order_by("-created_at")[:20])
    failures = list(qs.filter(state=OperationState.FAILED, created_at__gte=since).order_by("-created_at")[:20])
    seen = {r.pk for r in recent}
    return recent + [r for r in failures if r.pk not in seen]


def activity_for_user(*, user, limit: int = 12) -> list[Activity]:
    """What the portal did in the person's allocations, in words: failures of the last days that
    nobody dismissed first, then the newest of everything."""
    since = timezone.now() - PINNED_FAILURES
    rows = [a for source in registry.activity_sources() for a in source(user=user, since=since)]
    rows.sort(key=lambda a: a.when, reverse=True)
    pinned = [a for a in rows if a.failed and a.when >= since]
    rest = [a for a in rows if not (a.failed and a.when >= since)]
    return (pinned + rest)[:limit]
