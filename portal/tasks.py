"""Thin tasks: load the row, call a service, own retries."""
from celery import shared_task
from django.conf import settings

from . import services
from .cloud.errors import CloudError
from .models import Operation


@shared_task(acks_late=True)
def fail_stale_operations() -> int:
    """Beat: fail every kind of status row stuck queued or running (the name predates the other kinds)."""
    return services.status_rows_fail_stale(deadline_seconds=settings.PORTAL_OPERATION_DEADLINE)


@shared_task(acks_late=True, autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def cloud_check(operation_id: int) -> None:
    """Check that the portal can reach and authenticate to its cloud; records the catalog."""
    from .cloud import compute, identity

    row = Operation.objects.get(pk=operation_id)
    if row.is_final:
        return
    row = services.status_row_start(row=row, step="authenticating")
    try:
        catalog = identity.catalog_list()
        row = services.status_row_progress(row=row, step="asking nova", progress=50)
        version = compute.compute_ping()
    except CloudError as exc:
        services.status_row_fail(row=row, error=str(exc))
        return
    services.status_row_succeed(row=row, result={
        "compute_version": version,
        "services": sorted({s.type for s in catalog}),
    })
