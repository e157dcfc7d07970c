"""Thin tasks: the end of classes, run by beat."""
from __future__ import annotations

from celery import shared_task


@shared_task(acks_late=True)
def end_classes() -> dict:
    from django.utils import timezone

    from .services import courses_end

    return courses_end(today=timezone.localdate())
