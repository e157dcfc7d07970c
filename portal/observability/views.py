"""`/metrics`: for Prometheus, not for people.

Allowed from an address in PORTAL_METRICS_ALLOWED (loopback by default) when the request came
straight to the portal, or with `Authorization: Bearer <PORTAL_METRICS_TOKEN>` from anywhere.
A request that passed through a reverse proxy (it carries X-Forwarded-For, Forwarded or
X-Real-IP) is never allowed by address: behind a proxy on the same host every visitor would come
from 127.0.0.1. Signing in to the portal grants nothing here.
"""
from __future__ import annotations

import functools
import hmac
import ipaddress
import os

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse, HttpResponseForbidden, HttpResponseNotAllowed
from django.views.decorators.cache import never_cache
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.exposition import choose_encoder

from .. import registry
from .collectors import CeleryQueueCollector

PROXY_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_FORWARDED", "HTTP_X_REAL_IP")


@functools.lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple:
    try:
        return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())
    except ValueError as exc:
        raise ImproperlyConfigured(f"PORTAL_METRICS_ALLOWED: {exc}") from None


def _address_allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return any(ip in net for net in _networks(tuple(settings.PORTAL_METRICS_ALLOWED)))


def _token_allowed(request) -> bool:
    token = settings.PORTAL_METRICS_TOKEN
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def scrape_allowed(request) -> bool:
    if _token_allowed(request):
        return True
    if any(header in request.META for header in PROXY_HEADERS):
        return False
    return _address_allowed(request.META.get("REMOTE_ADDR", ""))


class _Scrape:
    """This process's metrics (or, in multiprocess mode, every process's) and the scrape-time ones
    (the queue lengths and what the apps registered)."""

    def collect(self):
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            base = CollectorRegistry()
            multiprocess.MultiProcessCollector(base)
        else:
            base = REGISTRY
        yield from base.collect()
        yield from CeleryQueueCollector().collect()
        for collector in registry.collectors():
            yield from collector.collect()


@login_not_required
@never_cache
def metrics(request):
    if not scrape_allowed(request):
        return HttpResponseForbidden("Forbidden\n", content_type="text/plain")
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    encoder, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encoder(_Scrape()), content_type=content_type)
