"""Thin tasks: the end of classes, run by beat."""
from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def end_classes() -> dict:
    from django.utils import timezone

    from .services import courses_end

    return courses_end(today=timezone.localdate())


@shared_task(acks_late=True)
def run_schedules() -> dict:
    """Class hours: shelve seats after a session, unshelve them 15 minutes before the next."""
    from django.utils import timezone

    from .services import courses_schedule

    return courses_schedule(now=timezone.now())
