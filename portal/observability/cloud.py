"""The gateway's instrumentation: per gateway call and per HTTP request to the cloud.

`cloud_call()` is opened by `portal.cloud.errors.cloud_errors()`, which every gateway function
enters, so it learns the function's name without any of them saying it. The keystoneauth session
of each connection the gateway makes is wrapped by `instrument_session()`: every request the SDK
sends (sign-in and version discovery included) passes through `Session.request`, which knows the
service type, the answer's status and the cloud's `x-openstack-request-id`.
"""
from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass
from urllib.parse import urlsplit

from . import metrics
from .context import OPENSTACK_FORM, request_id

log = logging.getLogger("portal.cloud")

# How the catalog and openstacksdk name a service -> the one label we use.
_SERVICE_NAMES = {"block-storage": "volumev3", "block_storage": "volumev3", "volume": "volumev3",
                  "volumev2": "volumev3"}
# A failure before any request was sent (no endpoint, no credentials) is put on the service the
# gateway module speaks to.
_MODULE_SERVICE = {"compute": "compute", "network": "network", "block_storage": "volumev3", "image": "image",
                   "identity": "identity", "usage": "compute"}
# Frames between a gateway function and `cloud_call()`.
_PLUMBING = frozenset({"contextlib", __name__, "portal.cloud.errors"})


@dataclass
class CloudCall:
    operation: str  # "compute.server_list": the gateway module and function
    service: str = ""  # of the latest request in the call
    cloud_request_id: str = ""  # the cloud's id of that request


_current: ContextVar[CloudCall | None] = ContextVar("portal_cloud_call", default=None)


def _caller_operation() -> str:
    frame = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__") in _PLUMBING:
        frame = frame.f_back
    if frame is None:
        return "unknown"
    module = frame.f_globals.get("__name__", "")
    return f"{module.removeprefix('portal.cloud.')}.{frame.f_code.co_name}"


@contextlib.contextmanager
def cloud_call():
    """Time one gateway call; count and log (WARNING, with the cloud's request id) its failure."""
    call = CloudCall(operation=_caller_operation())
    token = _current.set(call)
    started = time.perf_counter()
    try:
        yield call
    except Exception as exc:
        _failed(call, exc)
        raise
    finally:
        metrics.cloud_call_seconds.labels(call.operation).observe(time.perf_counter() - started)
        _current.reset(token)


def _failed(call: CloudCall, exc: Exception) -> None:
    if getattr(exc, "_portal_observed", False):  # a gateway call inside another: counted where it failed
        return
    service = call.service or _MODULE_SERVICE.get(call.operation.partition(".")[0], "unknown")
    cloud_request_id = getattr(exc, "request_id", "") or call.cloud_request_id
    metrics.cloud_errors.labels(service, call.operation, type(exc).__name__).inc()
    detail = str(getattr(exc, "detail", "") or exc)[:300]
    log.warning("cloud call %s failed: %s from %s, cloud request id %s: %s", call.operation,
                type(exc).__name__, service, cloud_request_id or "-", detail)
    with contextlib.suppress(AttributeError):
        exc._portal_observed = True
        if service not in ("unknown", "other") and not getattr(exc, "service", ""):
            exc.service = service  # which service did not answer, for the words on a status row


def _service_of(session, url: str, kwargs: dict) -> str:
    service = (kwargs.get("endpoint_filter") or {}).get("service_type") or kwargs.get("service_type")
    if not service and urlsplit(url).netloc:
        service = _service_by_address(session, url)
    return _SERVICE_NAMES.get(service, service) if service else "other"


def _service_by_address(session, url: str) -> str:
    """An absolute URL (sign-in, version discovery): Keystone's, or an endpoint's in the catalog of
    the token already held (no request is made to read it). Several services behind one address:
    the one sharing the longest path."""
    auth = getattr(session, "auth", None)
    candidates = [("identity", getattr(auth, "auth_url", None) or "")]
    catalog = getattr(getattr(getattr(auth, "auth_ref", None), "service_catalog", None), "catalog", None)
    candidates += [(entry.get("type", ""), endpoint.get("url", ""))
                   for entry in catalog or () for endpoint in entry.get("endpoints", ())]
    target = urlsplit(url)
    best, best_score = "", -1
    for service, endpoint in candidates:
        parts = urlsplit(endpoint)
        score = len(os.path.commonprefix([target.path, parts.path])) if parts.netloc == target.netloc else -1
        if score > best_score:
            best, best_score = service, score
    return best


def instrument_session(session) -> None:
    """Wrap `session.request` (a keystoneauth Session) to time, count and log each request."""
    if session is None or getattr(session, "_portal_instrumented", False):
        return
    send = session.request

    def request(url, method, **kwargs):
        call = _current.get()
        operation = call.operation if call else "none"
        service = _service_of(session, url, kwargs)
        ours = request_id.get()
        if ours and OPENSTACK_FORM.fullmatch(ours) and not kwargs.get("global_request_id"):
            kwargs["global_request_id"] = ours  # the cloud logs it beside its own request id
        response, status, started = None, "error", time.perf_counter()
        try:
            response = send(url, method, **kwargs)
            return response
        except Exception as exc:
            response = getattr(exc, "response", None)
            status = getattr(exc, "http_status", None) or "error"
            raise
        finally:
            elapsed = time.perf_counter() - started
            if response is not None:
                status = response.status_code
            headers = getattr(response, "headers", None) or {}
            theirs = headers.get("x-openstack-request-id") or headers.get("x-compute-request-id") or ""
            metrics.cloud_request_seconds.labels(service, operation).observe(elapsed)
            metrics.cloud_requests.labels(service, operation, str(status)).inc()
            if call is not None:
                call.service, call.cloud_request_id = service, theirs
            log.debug("cloud %s %s %s -> %s in %.3f s, cloud request id %s (%s)", service, method,
                      urlsplit(url).path, status, elapsed, theirs or "-", operation)

    session.request = request
    session._portal_instrumented = True
