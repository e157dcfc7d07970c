"""Who a cloud call acts as: a Keystone identity scoped to one project.

Every gateway function that touches a project takes a `Scope`: the person's own Keystone user
(or the portal's service user) scoped to that project. OpenStack's own policies then decide what
the call may see and touch, exactly as for that person's CLI; the portal never reaches into a
project with more rights than the identity holds there.

The cloud's admin credentials are reachable only through `admin_connection()`, which only
`portal.cloud.admin` calls (tests/portal/test_isolation_rules.py checks that).

Connections are cached per (identity, project) in the process; the token they hold is shared
between processes through the Django cache (encrypted), so a page, a worker and the next page
reuse one token until shortly before it expires.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import openstack
from django.conf import settings
from keystoneauth1 import exceptions as ksa_exc
from openstack import config as os_config

from portal.observability import instrument_session

log = logging.getLogger(__name__)

_lock = threading.Lock()
_cache: OrderedDict[tuple, openstack.connection.Connection] = OrderedDict()
_CACHE_SIZE = 512
# Keystone tokens live an hour by default; stop reusing one this many seconds before it expires.
TOKEN_MARGIN_SECONDS = 300


@dataclass(frozen=True)
class Identity:
    """A Keystone user the portal can sign in as (a person's, or the portal's service user)."""

    key: str  # stable cache key: "user:<keystone user id>" or "service"
    username: str
    password: str = field(repr=False)
    user_domain: str = "Default"


@dataclass(frozen=True)
class Scope:
    """An identity scoped to one project: the rights every call made with it has."""

    identity: Identity
    project_id: str
    # The region the calls go to; "" is the primary: the region of the service cloud in clouds.yaml.
    # Keystone is shared by every region, so one sign-in (and its token) serves them all.
    region: str = ""

    def __post_init__(self):
        if not self.project_id:
            raise ValueError("A cloud scope needs a project.")

    @property
    def is_service(self) -> bool:
        return self.identity.key == "service"


def _config():
    return os_config.OpenStackConfig(config_files=[settings.OS_CLIENT_CONFIG_FILE])


def _cloud_settings(cloud: str) -> dict:
    """auth_url, region, interface and endpoint overrides of a cloud in clouds.yaml (no credentials).

    `endpoint_overrides` holds the cloud's `<service>_endpoint_override` entries (e.g. a proxy in
    front of Nova) and `<service>_api_version` entries, so the connections made for people reach the
    same endpoints as the service identity's own. (An override with its version, e.g. `/v2.0`, and
    the API version beside it spare the SDK a discovery request: one that fails leaves the SDK using
    the override without a version for the life of the connection.)"""
    region = _config().get_one(cloud=cloud)
    overrides = {key: value for key, value in region.config.items()
                 if key.endswith(("_endpoint_override", "_api_version")) and key != "identity_api_version" and value}
    return {"auth_url": region.auth["auth_url"], "region_name": region.region_name,
            "interface": region.config.get("interface") or "public", "endpoint_overrides": overrides}


def service_identity() -> Identity:
    """The portal's own service user. Its credentials stay in clouds.yaml (PORTAL_SERVICE_CLOUD)
    and are read when a connection is made."""
    return Identity(key="service", username=settings.PORTAL_SERVICE_CLOUD, password="")


def _auth_for(scope: Scope, cloud: dict) -> dict:
    if scope.is_service:
        auth = _config().get_one(cloud=settings.PORTAL_SERVICE_CLOUD).auth
        auth = {k: v for k, v in auth.items() if not k.startswith("project_")}
        return {**auth, "project_id": scope.project_id}
    return {"auth_url": cloud["auth_url"], "username": scope.identity.username, "password": scope.identity.password,
            "user_domain_name": scope.identity.user_domain, "project_id": scope.project_id}


# A read that the network dropped, or that the cloud answered 502/503/504, is sent again at once
# this many times before the gateway calls the cloud unavailable. Writes never are: a create whose
# answer was lost may have happened, and the services look before they make it again.
READ_RETRIES = 2
_RETRY_STATUSES = frozenset({502, 503, 504})


def retry_reads(session) -> None:
    """Wrap `session.request` (keystoneauth) to repeat failed GET and HEAD requests at once."""
    if session is None or getattr(session, "_portal_retries_reads", False):
        return
    send = session.request

    def request(url, method, **kwargs):
        if method.upper() not in ("GET", "HEAD"):
            return send(url, method, **kwargs)
        for attempt in range(READ_RETRIES + 1):
            last = attempt == READ_RETRIES
            try:
                response = send(url, method, **kwargs)
            except ksa_exc.RetriableConnectionFailure:
                if last:
                    raise
                continue
            except ksa_exc.HttpError as exc:
                if last or exc.http_status not in _RETRY_STATUSES:
                    raise
                continue
            if last or response.status_code not in _RETRY_STATUSES:
                return response
        return response

    session.request = request
    session._portal_retries_reads = True


def service_home_scope() -> Scope:
    """The service user in its own project (for calls that concern no allocation: health, catalog)."""
    with _lock:
        key = ("service-home",)
        conn = _cache.get(key)
        if conn is None:
            region = _config().get_one(cloud=settings.PORTAL_SERVICE_CLOUD,
                                       api_timeout=settings.PORTAL_CLOUD_TIMEOUT)
            conn = openstack.connection.Connection(config=region)
            instrument_session(conn.session)
            retry_reads(conn.session)
            _cache[key] = conn
    return Scope(identity=service_identity(), project_id=conn.current_project_id)


def _token_key(scope: Scope) -> str:
    raw = f"{settings.OS_CLIENT_CONFIG_FILE}|{scope.identity.key}|{scope.identity.username}|{scope.project_id}"
    return "cloud:token:" + hashlib.sha256(raw.encode()).hexdigest()


def _load_token(conn, key: str) -> None:
    from django.core.cache import cache

    from portal import crypto

    stored = cache.get(key)
    if not stored:
        return
    try:
        conn.session.auth.set_auth_state(crypto.decrypt(stored))
    except Exception:  # noqa: BLE001 - a bad or old entry only costs a fresh sign-in
        cache.delete(key)


def _save_token(conn, key: str) -> None:
    from django.core.cache import cache

    from portal import crypto

    auth = conn.session.auth
    access = auth.auth_ref
    if access is None or access.expires is None:
        return
    from datetime import UTC, datetime

    ttl = int((access.expires - datetime.now(UTC)).total_seconds()) - TOKEN_MARGIN_SECONDS
    if ttl > 0:
        cache.set(key, crypto.encrypt(auth.get_auth_state()), ttl)


def primary_region() -> str:
    """The primary region's name: the region of the service cloud in clouds.yaml ("" if it names none)."""
    return _primary_region(settings.OS_CLIENT_CONFIG_FILE, settings.PORTAL_SERVICE_CLOUD)


@functools.lru_cache(maxsize=8)
def _primary_region(config_file: str, cloud: str) -> str:
    return _cloud_settings(cloud)["region_name"] or ""


def _connection_build(scope: Scope, *, timeout: float) -> openstack.connection.Connection:
    """A connection for the scope, not signed in yet, with the service cloud's interface, in the
    scope's region (the service cloud's own by default). The cloud's endpoint overrides (e.g. a proxy
    in front of Nova) belong to its own region; in another region the catalog's endpoints are used."""
    cloud = _cloud_settings(settings.PORTAL_SERVICE_CLOUD)
    overrides = cloud["endpoint_overrides"]
    if scope.region and scope.region != cloud["region_name"]:
        overrides = {k: v for k, v in overrides.items() if not k.endswith("_endpoint_override")}
    return openstack.connection.Connection(
        auth=_auth_for(scope, cloud), auth_type="password", region_name=scope.region or cloud["region_name"],
        interface=cloud["interface"], identity_api_version="3", api_timeout=timeout, **overrides)


def connection_for(scope: Scope, *, timeout: float | None = None) -> openstack.connection.Connection:
    """A connection acting as `scope.identity` inside `scope.project_id`."""
    timeout = timeout or settings.PORTAL_CLOUD_TIMEOUT
    key = (settings.OS_CLIENT_CONFIG_FILE, scope.identity.key, scope.identity.username, scope.project_id,
           scope.region, timeout)
    with _lock:
        conn = _cache.get(key)
        if conn is not None:
            _cache.move_to_end(key)
            return conn
    conn = _connection_build(scope, timeout=timeout)
    instrument_session(conn.session)
    retry_reads(conn.session)
    token_key = _token_key(scope)
    _load_token(conn, token_key)
    had = conn.session.auth.auth_ref
    conn.session.get_token()  # signs in unless the shared token is still good
    if conn.session.auth.auth_ref is not had:
        _save_token(conn, token_key)
    with _lock:
        _cache[key] = conn
        while len(_cache) > _CACHE_SIZE:
            _, old = _cache.popitem(last=False)
            _close(old)
    return conn


def admin_connection(*, timeout: float | None = None, region: str = "") -> openstack.connection.Connection:
    """The cloud admin (OS_CLOUD), in its own admin project, in `region` ("": its default region).
    Only portal.cloud.admin may call this."""
    timeout = timeout or settings.PORTAL_CLOUD_TIMEOUT
    key = ("admin", settings.OS_CLIENT_CONFIG_FILE, settings.OS_CLOUD, region, timeout)
    with _lock:
        conn = _cache.get(key)
        if conn is None:
            config = _config().get_one(cloud=settings.OS_CLOUD, api_timeout=timeout,
                                       **({"region_name": region} if region else {}))
            conn = openstack.connection.Connection(config=config)
            instrument_session(conn.session)
            retry_reads(conn.session)
            _cache[key] = conn
        return conn


def _close(conn) -> None:
    try:
        conn.close()
    except Exception as exc:  # noqa: BLE001 - closing is best effort
        log.debug("closing a cloud connection failed: %s", exc)


def connection_cache_clear() -> None:
    with _lock:
        for conn in _cache.values():
            _close(conn)
        _cache.clear()
