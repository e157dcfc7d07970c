"""Keystone: the service catalog and, later, projects, users and roles."""
from __future__ import annotations

from dataclasses import dataclass

from .connection import connection_get
from .errors import cloud_errors


@dataclass(frozen=True)
class CatalogService:
    type: str
    name: str
    region: str
    url: str


def catalog_list(*, timeout: float | None = None) -> list[CatalogService]:
    """The services the portal's credentials see, with their public endpoints."""
    with cloud_errors():
        conn = connection_get(timeout=timeout)
        access = conn.session.auth.get_access(conn.session)
        services = []
        for entry in access.service_catalog.catalog:
            for endpoint in entry.get("endpoints", []):
                if endpoint.get("interface") == "public":
                    services.append(CatalogService(
                        type=entry.get("type", ""), name=entry.get("name", ""),
                        region=endpoint.get("region_id") or endpoint.get("region") or "",
                        url=endpoint.get("url", ""),
                    ))
        return sorted(services, key=lambda s: (s.type, s.region))
