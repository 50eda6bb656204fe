"""The farm's queues and jobs as people and apps see them from outside: queue depths,
running jobs with their estimates, dead letters. Plain values, read by ``hevcq.farm.Farm``
and shown by the CLI, the dashboard and the API (``RunningJob`` is the API's own model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hevcq.ledger import ENCODING, SEARCHING, STEPS, VERIFYING, LedgerItem, State
from hevcq.pace import time_left_s


@dataclass(frozen=True)
class QueueDepth:
    """Message counts of one pool."""

    pool: str
    visible: int
    in_flight: int
    delayed: int
    dead_letters: int


class RunningJob(BaseModel):
    """A job some worker holds right now, as its ledger item tells (the API returns it)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    job_id: str = ""
    key: str
    pool: str
    worker: str
    progress: float = Field(description="Percent of the source encoded.")
    step: Literal["searching", "encoding", "verifying"] | None = Field(
        None,
        description='"searching" while a quality search or ladder probes run, "verifying"'
        " while the output is checked and measured after its encode.",
    )
    probe: int | None = Field(
        None,
        description="While a quality search runs: the probe encode under way (1, 2, ...; "
        "at most 6). None otherwise, and for a per-title ladder's probes, which run as one.",
    )
    probe_done: float | None = Field(
        None,
        description="While a quality search's probe runs: the percent of it done (its "
        "encodes by their progress, each sample's score when it ends). None otherwise.",
    )
    age_s: float
    eta_s: float | None = Field(None, description="From progress and age; None before 1%.")
    fps: float | None = None
    speed: float | None = None  # x real time

    @model_validator(mode="before")
    @classmethod
    def _estimate(cls, data: Any) -> Any:
        """Seconds left at the job's pace so far (``hevcq.pace``), unless given."""
        if isinstance(data, dict) and "eta_s" not in data:
            left = time_left_s(float(data.get("age_s", 0)), float(data.get("progress", 0)))
            data = {**data, "eta_s": None if left is None else round(left, 1)}
        return data

    @property
    def done(self) -> str:
        """What a person reads of its progress: the percent encoded, or the step while
        no encode's progress counts yet (a search's with its probe: ``searching, probe 2``)."""
        if self.step == SEARCHING and self.probe:
            return f"{SEARCHING}, probe {self.probe}"
        return self.step if self.step in (SEARCHING, VERIFYING) else f"{self.progress:.0f}%"

    @classmethod
    def of(cls, item: LedgerItem, now: float) -> RunningJob:
        """A running item as a job. Its age is read from the wall clock its worker wrote,
        so it is only as right as that worker's clock: shown to people, never decisive.

        Its time left is at the pace of its encode: counted from when the encode began
        once a search came first (``LedgerItem.step_at``), which would otherwise count as
        encoding time (15 % after a 150 s search read as 15 minutes left)."""
        step = item.step if item.step in STEPS else None
        began = item.step_at if step == ENCODING and item.step_at else item.started_at
        progress = float(item.progress or 0)
        left = time_left_s(max(0.0, now - (began or now)), progress)
        return cls(
            job_id=item.job_id,
            key=item.key,
            pool=item.pool,
            worker=item.worker,
            progress=progress,
            step=step,  # a worker's word, shown to people: only the steps there are
            probe=item.probe if step == SEARCHING and item.probe and item.probe > 0 else None,
            probe_done=_percent(item.probe_done) if step == SEARCHING else None,
            age_s=round(max(0.0, now - (item.started_at or now)), 1),
            eta_s=None if left is None else round(left, 1),
            fps=item.fps,
            speed=item.speed,
        )


@dataclass(frozen=True)
class DeadLetter:
    """One message in a dead-letter queue."""

    message_id: str
    failure_class: str
    reason: str
    body: str


def running_jobs(items: list[LedgerItem], now: float) -> list[RunningJob]:
    """The running items as jobs, the longest running first."""
    running = (RunningJob.of(i, now) for i in items if i.state is State.RUNNING)
    return sorted(running, key=lambda r: -r.age_s)


def _percent(value: float | None) -> float | None:
    """A percent a worker wrote, held to 0-100; None for nothing or not a number."""
    if value is None or not math.isfinite(value):
        return None
    return min(100.0, max(0.0, value))
