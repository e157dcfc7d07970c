"""The portal's own metrics (django-prometheus adds requests, latencies and database ones).

All are counters, histograms or "max" gauges, which prometheus_client's multiprocess mode sums
correctly across gunicorn workers and Celery pool processes when PROMETHEUS_MULTIPROC_DIR is set.
What is read at scrape time (queue lengths) lives in `collectors`; the apps define their own
(the meter's in `allocations.metrics`) and register them in `portal.registry`.
"""
from prometheus_client import Counter, Histogram

# A cached GET answers in milliseconds; a server create or a slow Keystone takes seconds; the
# API timeout (PORTAL_CLOUD_TIMEOUT) is 30 s by default.
CLOUD_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TASK_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)

cloud_request_seconds = Histogram(
    "portal_cloud_request_seconds",
    "HTTP requests to the cloud, by service type and the gateway function (portal.cloud) that made them.",
    ["service", "operation"], buckets=CLOUD_BUCKETS)
cloud_requests = Counter(
    "portal_cloud_requests",
    "HTTP requests to the cloud by HTTP status ('error': no answer, e.g. a refused connection or a timeout).",
    ["service", "operation", "status"])
cloud_call_seconds = Histogram(
    "portal_cloud_call_seconds",
    "Gateway function calls from start to end: sign-in, every request, the SDK's own retries.",
    ["operation"], buckets=CLOUD_BUCKETS)
cloud_errors = Counter(
    "portal_cloud_errors",
    "Gateway calls that failed, by the service that failed and the portal's error class (NotFound, "
    "CloudUnavailable, QuotaExceeded, ...).",
    ["service", "operation", "error"])

task_seconds = Histogram(
    "portal_task_seconds", "Celery task run time, by task and final state (SUCCESS, FAILURE, RETRY, ...).",
    ["task", "state"], buckets=TASK_BUCKETS)
task_failures = Counter(
    "portal_task_failures", "Celery tasks that raised, by task and exception class.", ["task", "exception"])
