"""What the portal tells its operators: Prometheus metrics at /metrics and request ids in the logs.

- `context`: the request id of the work in hand (a contextvar), and the logging filter that puts
  it on every record.
- `cloud`: the one instrumentation point of the cloud gateway. `portal.cloud.errors.cloud_errors()`
  (entered by every gateway function) opens a `cloud_call()` that names the gateway function;
  `instrument_session()` (applied by `portal.cloud.connection` to each connection's keystoneauth
  session) times every HTTP request with the service type it went to, reads the cloud's
  `x-openstack-request-id`, and passes our request id on as OpenStack's global request id.
- `task_signals`: Celery signals: the request id travels in a task's headers, task run times and
  outcomes are recorded, and the apps' task observers (the meter's run time) are told.
- `collectors`: what is read at scrape time: Celery queue lengths (Redis). The apps register their
  own collectors (instances: mirror sync lag) in `portal.registry`.
- `views`: `/metrics`, for the addresses in PORTAL_METRICS_ALLOWED or a PORTAL_METRICS_TOKEN.

Nothing here imports the apps (portal/ knows no app): this package is loaded by `portal.celery` and
`portal.cloud` while settings are still being read.
"""
from . import task_signals  # noqa: F401 - connects the Celery signals
from .cloud import cloud_call, instrument_session
from .context import RequestIdFilter, current_request_id

__all__ = ["RequestIdFilter", "cloud_call", "current_request_id", "instrument_session"]
