"""The request id of the work in hand: set by the middleware for a request, by a task's headers
for a task, and put on every log record by `RequestIdFilter`."""
from __future__ import annotations

import contextlib
import logging
import re
import uuid
from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("portal_request_id", default="")

# What we accept from a client's X-Request-ID: one token, no spaces or control characters (so it
# cannot forge a log line), short enough for a log column.
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@/+=-]{0,127}")
# OpenStack services accept only this form as a global request id (oslo.middleware).
OPENSTACK_FORM = re.compile(r"req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def new_request_id() -> str:
    """A fresh id in OpenStack's own form, so the cloud can log it as the global request id."""
    return f"req-{uuid.uuid4()}"


def sane_request_id(value: str | None) -> str:
    """`value` if it is fit to log and pass on, else ""."""
    value = (value or "").strip()
    return value if _SANE.fullmatch(value) else ""


def current_request_id() -> str:
    return request_id.get()


@contextlib.contextmanager
def using_request_id(value: str):
    token = request_id.set(value)
    try:
        yield value
    finally:
        request_id.reset(token)


class RequestIdFilter(logging.Filter):
    """Adds `request_id` ("-" outside a request or a task a request caused) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = request_id.get() or "-"
        return True
