"""Nova."""
from __future__ import annotations

from .connection import connection_get
from .errors import cloud_errors


def compute_ping(*, timeout: float | None = None) -> str:
    """Ask Nova for its version document; returns the API's current microversion."""
    with cloud_errors():
        conn = connection_get(timeout=timeout)
        response = conn.compute.get("/", microversion=None)
        response.raise_for_status()
        version = response.json().get("version", {})
        return version.get("version") or version.get("id", "")
