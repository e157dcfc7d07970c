import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings.local")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Request ids carried to tasks, task and meter metrics, request ids in the worker's log lines.
from portal import observability  # noqa: E402, F401 - connects its signals once the app is configured
