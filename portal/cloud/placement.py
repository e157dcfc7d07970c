"""Placement: what a server really holds (e.g. its VGPU), and vGPU capacity."""
from __future__ import annotations

from dataclasses import dataclass

from .connection import connection_get
from .errors import cloud_errors


@dataclass(frozen=True)
class ConsumerAllocation:
    resource_provider_id: str
    resources: dict


def allocation_list_for_consumer(*, consumer_id: str) -> list[ConsumerAllocation]:
    """The resources a consumer (a server) holds, per resource provider."""
    with cloud_errors():
        conn = connection_get()
        response = conn.placement.get(f"/allocations/{consumer_id}",
                                      headers={"OpenStack-API-Version": "placement 1.28"})
        response.raise_for_status()
        body = response.json().get("allocations", {})
    return [ConsumerAllocation(resource_provider_id=rp, resources=dict(v.get("resources", {})))
            for rp, v in body.items()]


def consumer_resource_total(*, consumer_id: str, resource_class: str) -> int:
    return sum(a.resources.get(resource_class, 0) for a in allocation_list_for_consumer(consumer_id=consumer_id))
