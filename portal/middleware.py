"""Every request gets an id: the client's X-Request-ID if it is sane, else a new one.

It is sent back as X-Request-ID, put on every log record written while the request is handled
(portal.observability.RequestIdFilter), carried to the Celery tasks the request enqueues, and
passed to the cloud as OpenStack's global request id, so one id finds a click in the portal's,
the worker's and the cloud's logs.
"""
from django.core.signals import request_finished
from django.dispatch import receiver

from portal.observability.context import new_request_id, request_id, sane_request_id

HEADER = "X-Request-ID"


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.request_id = sane_request_id(request.headers.get(HEADER)) or new_request_id()
        # Kept until the response is closed: Django logs a 4xx/5xx answer ("Forbidden: /x") after
        # every middleware has returned.
        request_id.set(request.request_id)
        response = self.get_response(request)
        response[HEADER] = request.request_id
        return response


@receiver(request_finished, dispatch_uid="portal.middleware.request_id")
def _request_finished(**kwargs):
    request_id.set("")
