"""The meter's own metrics: how long each run took and when one last succeeded. Recorded by an
observer of the meter task that AllocationsConfig registers in `portal.registry`; the worker's
task signals (`portal.observability.task_signals`) call it when a run ends.

Histograms and a "max" gauge, which prometheus_client's multiprocess mode sums correctly."""
from prometheus_client import Gauge, Histogram

from portal.observability.metrics import TASK_BUCKETS

METER_TASK = "allocations.tasks.meter_allocations"

meter_run_seconds = Histogram(
    "portal_meter_run_seconds", f"One run of the meter ({METER_TASK}), by outcome.",
    ["outcome"], buckets=TASK_BUCKETS)
meter_last_success = Gauge(
    "portal_meter_last_success_timestamp_seconds", "When a meter run last finished without an error (Unix time).",
    multiprocess_mode="max")


def meter_run_observed(*, state: str, seconds: float) -> None:
    meter_run_seconds.labels("success" if state == "SUCCESS" else "failure").observe(seconds)
    if state == "SUCCESS":
        meter_last_success.set_to_current_time()
