"""The portal's own cloud exceptions, with messages a researcher understands."""
from __future__ import annotations

import contextlib
import re

from openstack import exceptions as sdk_exc
from keystoneauth1 import exceptions as ksa_exc


class CloudError(Exception):
    """Something the cloud refused or could not do. `str()` is safe to show to a user."""

    default_message = "The cloud could not complete the request."

    def __init__(self, message: str | None = None, *, detail: str = "", request_id: str = ""):
        super().__init__(message or self.default_message)
        self.detail = detail
        self.request_id = request_id


class CloudUnavailable(CloudError):
    default_message = "The cloud is not answering right now. Please try again in a few minutes."


class NotFound(CloudError):
    default_message = "That resource no longer exists in the cloud."


class Conflict(CloudError):
    default_message = "The resource is busy or in a state that does not allow this action."


class Forbidden(CloudError):
    default_message = "The cloud does not allow this for your project."


class BadRequest(CloudError):
    default_message = "The cloud rejected the request as invalid."


class QuotaExceeded(CloudError):
    default_message = "This would exceed your project's quota."


class NoValidHost(CloudError):
    default_message = (
        "No host has capacity for this flavor right now. Try a smaller flavor, or try again later."
    )


_QUOTA = re.compile(r"quota|exceed", re.I)


def _message_of(exc: Exception) -> str:
    for attr in ("details", "message"):
        value = getattr(exc, attr, None)
        if value:
            return str(value)
    return str(exc)


def translate(exc: Exception) -> CloudError:
    """Map an SDK or keystoneauth exception onto ours."""
    if isinstance(exc, CloudError):
        return exc
    detail = _message_of(exc)
    request_id = getattr(exc, "request_id", "") or ""
    if isinstance(exc, (ksa_exc.ConnectFailure, ksa_exc.ConnectTimeout, ksa_exc.DiscoveryFailure,
                        ksa_exc.RequestTimeout, ksa_exc.ServiceUnavailable)):
        return CloudUnavailable(detail=detail, request_id=request_id)
    if "no valid host" in detail.lower():
        return NoValidHost(detail=detail, request_id=request_id)
    if isinstance(exc, sdk_exc.NotFoundException) or isinstance(exc, ksa_exc.NotFound):
        return NotFound(detail=detail, request_id=request_id)
    if isinstance(exc, sdk_exc.ConflictException):
        if _QUOTA.search(detail):
            return QuotaExceeded(_quota_message(detail), detail=detail, request_id=request_id)
        return Conflict(detail=detail, request_id=request_id)
    status = getattr(exc, "status_code", None) or getattr(exc, "http_status", None)
    if status == 403 or isinstance(exc, sdk_exc.ForbiddenException):
        if _QUOTA.search(detail):
            return QuotaExceeded(_quota_message(detail), detail=detail, request_id=request_id)
        return Forbidden(detail=detail, request_id=request_id)
    if status == 413 or (status in (400, 409) and _QUOTA.search(detail)):
        return QuotaExceeded(_quota_message(detail), detail=detail, request_id=request_id)
    if status == 400 or isinstance(exc, sdk_exc.BadRequestException):
        return BadRequest(f"The cloud rejected the request: {detail}", detail=detail, request_id=request_id)
    if status and status >= 500:
        return CloudUnavailable(detail=detail, request_id=request_id)
    if isinstance(exc, (sdk_exc.SDKException, ksa_exc.ClientException)):
        return CloudError(f"The cloud could not complete the request: {detail}", detail=detail,
                          request_id=request_id)
    raise exc


def _quota_message(detail: str) -> str:
    return f"This would exceed your project's quota ({detail.rstrip('.')})."


@contextlib.contextmanager
def cloud_errors():
    """Re-raise any SDK exception inside the block as the portal's own."""
    try:
        yield
    except (sdk_exc.SDKException, ksa_exc.ClientException) as exc:
        raise translate(exc) from exc
