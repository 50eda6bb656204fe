"""The EMF lines a worker prints per job: structure CloudWatch accepts, values it expects."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from hevcq.errors import FailureClass
from hevcq.messages import JobResult
from hevcq.worker.metrics import (
    MAX_METRICS_PER_DIRECTIVE,
    NAMESPACE,
    UNITS,
    emf_line,
    job_metrics_line,
    job_values,
)

FINISHED = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)


def _result(**kw: Any) -> JobResult:
    base: dict[str, Any] = {
        "job_id": "j1",
        "pool": "hevc",
        "bucket": "b",
        "source_key": "TODO/a.mp4",
        "outcome": "done",
        "finished_at": FINISHED,
    }
    return JobResult(**(base | kw))


def _assert_valid_emf(doc: dict[str, Any]) -> None:
    """The checks CloudWatch applies before it extracts metrics from a log event."""
    meta = doc["_aws"]
    assert isinstance(meta["Timestamp"], int)
    [directive] = meta["CloudWatchMetrics"]
    assert directive["Namespace"] == NAMESPACE
    for dimension_set in directive["Dimensions"]:
        for dim in dimension_set:
            assert isinstance(doc[dim], str)
    names = [m["Name"] for m in directive["Metrics"]]
    assert len(names) == len(set(names)) <= MAX_METRICS_PER_DIRECTIVE
    for metric in directive["Metrics"]:
        assert metric["Unit"] in {"Count", "Seconds", "Bytes", "None"}
        value = doc[metric["Name"]]
        assert isinstance(value, int | float)
        assert not isinstance(value, bool)


def test_done_job_line() -> None:
    line = job_metrics_line(
        _result(input_bytes=1000, output_bytes=400, duration_s=60.0, encode_s=30.0)
    )
    assert "\n" not in line
    doc = json.loads(line)
    _assert_valid_emf(doc)
    assert doc["_aws"]["Timestamp"] == int(FINISHED.timestamp() * 1000)
    assert doc["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Pool"]]
    assert doc["Pool"] == "hevc"
    assert (doc["JobsDone"], doc["JobsSkipped"], doc["JobsFailed"]) == (1, 0, 0)
    assert doc["EncodeSeconds"] == 30.0
    assert doc["RealTimeFactor"] == 2.0
    assert (doc["BytesIn"], doc["BytesOut"], doc["BytesSaved"]) == (1000, 400, 600)
    assert doc["job_id"] == "j1"
    declared = {m["Name"]: m["Unit"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert declared == UNITS


@pytest.mark.parametrize(
    ("outcome", "counter"),
    [("done", "JobsDone"), ("skipped", "JobsSkipped"), ("failed", "JobsFailed")],
)
def test_exactly_one_outcome_counter(outcome: str, counter: str) -> None:
    values = job_values(_result(outcome=outcome))
    counters = {k: v for k, v in values.items() if k.startswith("Jobs")}
    assert counters == {
        "JobsDone": 0,
        "JobsSkipped": 0,
        "JobsFailed": 0,
    } | {counter: 1}


def test_skipped_job_declares_only_what_it_measured() -> None:
    doc = json.loads(job_metrics_line(_result(outcome="skipped", input_bytes=5)))
    _assert_valid_emf(doc)
    names = {m["Name"] for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]}
    assert names == {"JobsDone", "JobsSkipped", "JobsFailed", "BytesIn"}
    assert "EncodeSeconds" not in doc
    assert "BytesSaved" not in doc


def test_failed_job_carries_its_class_as_a_property() -> None:
    doc = json.loads(
        job_metrics_line(
            _result(outcome="failed", failure_class=FailureClass.PERMANENT, reason="bad")
        )
    )
    _assert_valid_emf(doc)
    assert doc["failure_class"] == "permanent"
    assert doc["JobsFailed"] == 1


@pytest.mark.parametrize(
    ("encode_s", "duration_s", "expected"),
    [(0.0, 60.0, None), (None, 60.0, None), (20.0, None, None), (20.0, 10.0, 0.5)],
)
def test_real_time_factor_needs_both_times(
    encode_s: float | None, duration_s: float | None, expected: float | None
) -> None:
    values = job_values(_result(encode_s=encode_s, duration_s=duration_s))
    assert values.get("RealTimeFactor") == expected


def test_bigger_output_gives_negative_savings() -> None:
    assert job_values(_result(input_bytes=100, output_bytes=150))["BytesSaved"] == -50


def test_unknown_metric_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown metrics"):
        emf_line("hevc", {"Bogus": 1}, timestamp_ms=0)


def test_property_cannot_shadow_a_metric() -> None:
    with pytest.raises(ValueError, match="overwrite"):
        emf_line("hevc", {"JobsDone": 1}, timestamp_ms=0, properties={"JobsDone": "x"})


def test_non_finite_values_never_reach_the_line() -> None:
    with pytest.raises(ValueError, match="JSON compliant"):
        emf_line("hevc", {"EncodeSeconds": float("nan")}, timestamp_ms=0)
