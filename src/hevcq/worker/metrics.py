"""Per-job CloudWatch metrics as Embedded Metric Format (EMF) log lines.

A worker prints one line per finished job to stdout; on ECS the awslogs driver ships it
to CloudWatch Logs, which extracts the metrics: no PutMetricData calls, no extra IAM.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, Literal

from hevcq.messages import JobResult

NAMESPACE = "hevcq"
DIMENSION = "Pool"
Unit = Literal["Count", "Seconds", "Bytes", "None"]

# CloudWatch EMF specification: at most 100 metrics per directive, 30 dimensions per set.
MAX_METRICS_PER_DIRECTIVE = 100

UNITS: dict[str, Unit] = {
    "JobsDone": "Count",
    "JobsSkipped": "Count",
    "JobsFailed": "Count",
    "EncodeSeconds": "Seconds",
    "RealTimeFactor": "None",
    "BytesIn": "Bytes",
    "BytesOut": "Bytes",
    "BytesSaved": "Bytes",
}
_COUNTERS = {"done": "JobsDone", "skipped": "JobsSkipped", "failed": "JobsFailed"}


def job_values(result: JobResult) -> dict[str, float]:
    """The metric values one job contributes; absent measurements are left out."""
    values: dict[str, float] = {name: 0 for name in _COUNTERS.values()}
    values[_COUNTERS[result.outcome]] = 1
    if result.encode_s is not None and result.encode_s > 0:
        values["EncodeSeconds"] = result.encode_s
        if result.duration_s:
            # Seconds of media per second of encoding: above 1 is faster than real time.
            values["RealTimeFactor"] = result.duration_s / result.encode_s
    if result.input_bytes is not None:
        values["BytesIn"] = result.input_bytes
    if result.output_bytes is not None:
        values["BytesOut"] = result.output_bytes
    if result.outcome == "done" and None not in (result.input_bytes, result.output_bytes):
        values["BytesSaved"] = int(result.input_bytes or 0) - int(result.output_bytes or 0)
    return {k: v for k, v in values.items() if math.isfinite(v)}


def emf_line(
    pool: str,
    values: Mapping[str, float],
    *,
    timestamp_ms: int,
    properties: Mapping[str, Any] | None = None,
) -> str:
    """One EMF JSON line: ``values`` as metrics of ``pool``, ``properties`` searchable only."""
    unknown = set(values) - UNITS.keys()
    if unknown:
        raise ValueError(f"unknown metrics: {sorted(unknown)}")
    props = dict(properties or {})
    clash = set(props) & (set(values) | {DIMENSION, "_aws"})
    if clash:
        raise ValueError(f"properties would overwrite metrics or the dimension: {sorted(clash)}")
    doc: dict[str, Any] = {
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [
                {
                    "Namespace": NAMESPACE,
                    "Dimensions": [[DIMENSION]],
                    "Metrics": [{"Name": name, "Unit": UNITS[name]} for name in values],
                }
            ],
        },
        DIMENSION: pool,
        **props,
        **values,
    }
    # allow_nan=False: CloudWatch drops a whole record with a NaN or Infinity in it.
    return json.dumps(doc, separators=(",", ":"), allow_nan=False, default=str)


def job_metrics_line(result: JobResult) -> str:
    """The EMF line for one finished job, timestamped when it finished."""
    properties = {
        "job_id": result.job_id,
        "outcome": result.outcome,
        "source_key": result.source_key,
    }
    if result.failure_class is not None:
        properties["failure_class"] = str(result.failure_class)
    return emf_line(
        result.pool,
        job_values(result),
        timestamp_ms=int(result.finished_at.timestamp() * 1000),
        properties=properties,
    )


def print_metrics(result: JobResult) -> None:
    """One CloudWatch embedded-metric-format line on stdout; the log driver ships it."""
    print(job_metrics_line(result), flush=True)
