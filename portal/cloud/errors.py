"""The portal's own cloud exceptions, with messages a researcher understands."""
from __future__ import annotations

import contextlib
import re

from keystoneauth1 import exceptions as ksa_exc
from openstack import exceptions as sdk_exc

from portal.observability import cloud_call


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
    if isinstance(exc, (sdk_exc.NotFoundException, ksa_exc.NotFound)):
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


# The quota messages of Cinder, Nova and Neutron, parsed so the page can say it in numbers.
_CINDER_SIZE = re.compile(r"exceeds allowed (?P<name>\w+) quota\. Requested (?P<req>\d+)G, quota is (?P<quota>\d+)G "
                          r"and (?P<used>\d+)G has been consumed")
_CINDER_COUNT = re.compile(r"Maximum number of (?P<what>volumes|snapshots) allowed \((?P<quota>\d+)\) exceeded")
_CINDER_LIMIT = re.compile(r"Requested volume size (?P<req>\d+)G is larger than maximum allowed limit (?P<limit>\d+)G")
_NOVA = re.compile(r"Quota exceeded for (?P<names>[\w, ]+): Requested (?P<req>[\d, -]+), but already used "
                   r"(?P<used>[\d, ]+) of (?P<quota>[\d, ]+) ")
_NEUTRON = re.compile(r"Quota exceeded for resources: \[(?P<names>[^\]]*)\]")
_NOVA_WORDS = {"cores": "cores", "instances": "instances", "ram": "GB of RAM", "key_pairs": "SSH key pairs",
               "server_groups": "server groups", "server_group_members": "server group members"}
_NEUTRON_WORDS = {"floatingip": "public IPs", "security_group": "security groups",
                  "security_group_rule": "security group rules", "port": "network ports", "network": "networks",
                  "subnet": "subnets", "router": "routers"}


def _n(value: int) -> str:
    return f"{value:,}"


def _quota_message(detail: str) -> str:
    """The cloud's quota refusal in numbers a researcher reads at a glance, or its own words if unknown."""
    if m := _CINDER_SIZE.search(detail):
        req, quota, used = (int(m[k]) for k in ("req", "quota", "used"))
        what = "volume storage" if m["name"].startswith("gigabytes") else m["name"].replace("_", " ")
        return (f"The project's {what} quota ({_n(quota)} GB) would be exceeded by {_n(req + used - quota)} GB: "
                f"{_n(req)} GB asked for, {_n(used)} GB already in use.")
    if m := _CINDER_COUNT.search(detail):
        what = "volumes" if m["what"] == "volumes" else "volume snapshots"
        return f"The project may have at most {_n(int(m['quota']))} {what}, and has that many already."
    if m := _CINDER_LIMIT.search(detail):
        return f"A single volume may be at most {_n(int(m['limit']))} GB; {_n(int(m['req']))} GB was asked for."
    if m := _NOVA.search(detail):
        parts = [p.strip() for p in m["names"].split(",")]
        reqs, useds, quotas = ([v.strip() for v in m[k].split(",")] for k in ("req", "used", "quota"))
        if len(reqs) == len(useds) == len(quotas) == len(parts):
            over = zip(parts, reqs, useds, quotas, strict=True)
            return "The project's quota would be exceeded: " + "; ".join(
                _nova_over(name, req, used, quota) for name, req, used, quota in over) + "."
    if m := _NEUTRON.search(detail):
        names = [n.strip(" '\"") for n in m["names"].split(",") if n.strip(" '\"")]
        return ("The project has used all of its quota of "
                + " and ".join(_NEUTRON_WORDS.get(n, n.replace("_", " ") + "s") for n in names) + ".")
    return f"This would exceed your project's quota ({detail.rstrip('.')})."


def _nova_over(name: str, req: str, used: str, quota: str) -> str:
    words = _NOVA_WORDS.get(name, name.replace("_", " "))
    if not (used.isdigit() and quota.isdigit()) or not req.replace("-", "").isdigit():
        return f"{req} {words} asked for, {used} of {quota} in use"
    req_n = int(req.split("-")[0])
    used_n, quota_n = int(used), int(quota)
    if name == "ram":  # Nova counts RAM in MB
        req_n, used_n, quota_n = (round(v / 1024) for v in (req_n, used_n, quota_n))
    over = req_n + used_n - quota_n
    unit = " GB" if name == "ram" else ""
    return (f"{_n(quota_n)} {words} allowed, {_n(used_n)}{unit} in use, {_n(req_n)}{unit} more asked for"
            + (f" ({_n(over)}{unit} over)" if over > 0 else ""))


@contextlib.contextmanager
def cloud_errors():
    """Re-raise any SDK exception inside the block as the portal's own (timed, counted and logged
    by portal.observability, per gateway function)."""
    with cloud_call():
        try:
            yield
        except (sdk_exc.SDKException, ksa_exc.ClientException) as exc:
            raise translate(exc) from exc
