"""What the API and `hevcq status --json` return: one set of models, one OpenAPI schema."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from hevcq.errors import FailureClass
from hevcq.jobs import RunningJob

PoolStateName = Literal[
    "awaiting upload", "waiting", "queued", "running", "done", "skipped", "failed", "interrupted"
]
VideoStateName = Literal["awaiting upload", "processing", "done", "failed"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PoolStatus(_Out):
    """One pool's queue and workers."""

    pool: str
    waiting: int = Field(description="Messages visible in the queue.")
    in_flight: int = Field(description="Messages received and not yet deleted.")
    delayed: int
    dead_lettered: int
    workers_alive: int = Field(description="Distinct workers holding a live lease right now.")


class JobSummary(_Out):
    """One (source object, pool) job as the ledger has it."""

    job_id: str
    key: str
    pool: str
    state: str
    worker: str = ""
    progress: float = 0.0
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    input_bytes: int | None = None
    output_bytes: int | None = None
    saved_bytes: int | None = None
    reason: str | None = None
    failure_class: FailureClass | None = None
    output_key: str | None = None
    # The output's VMAF or XPSNR (dB) against its source (pooled, worst 1 %; VMAF's NEG
    # beside it), the CRF it was encoded at, and the size a CRF search or a per-title
    # ladder's probes predicted (a pool with a quality target).
    vmaf: float | None = None
    vmaf_low: float | None = None
    vmaf_neg: float | None = None
    xpsnr: float | None = None
    xpsnr_low: float | None = None
    crf: int | None = None
    predicted_bytes: int | None = None


class JobList(_Out):
    """A page of jobs, newest first."""

    jobs: list[JobSummary]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next (older) page; null on the last page."
    )


class ObjectMeta(_Out):
    """An object's size, ETag and our metadata."""

    key: str
    size: int
    etag: str
    metadata: dict[str, str]


class JobVersion(_Out):
    """One version (or settings) of a job's source, newest first: the current one, then
    the earlier ones as their last record left them (the ledger keeps twenty)."""

    etag: str
    settings_hash: str
    state: str
    finished_at: datetime | None = None
    output_etag: str | None = None
    reason: str | None = None


class JobDetail(_Out):
    """A job with its objects, phase timings and versions."""

    job: JobSummary
    source: ObjectMeta | None
    output: ObjectMeta | None
    timings_s: dict[str, float]
    versions: list[JobVersion]
    play_url: str | None = None
    poster_url: str | None = None


class StateTotal(_Out):
    """How many jobs of a pool are in a state."""

    pool: str
    state: str
    jobs: int


class StatusReport(_Out):
    """What `hevcq status` shows."""

    pools: list[PoolStatus]
    running: list[RunningJob]
    totals: list[StateTotal]


class SavedPoint(_Out):
    """Cumulative bytes saved after a finished job."""

    at: datetime
    saved_bytes: int


class HourCount(_Out):
    """Jobs a pool finished in one hour."""

    hour: datetime
    pool: str
    jobs: int


class Totals(_Out):
    """Totals over every finished job, and the chart series."""

    done: int
    skipped: int
    failed: int
    input_bytes: int
    output_bytes: int
    saved_bytes: int
    saved_over_time: list[SavedPoint]
    jobs_per_hour: list[HourCount]


class Dashboard(_Out):
    """Everything the dashboard page draws, in one request."""

    status: StatusReport
    recent: list[JobSummary]
    totals: Totals


class DeadLetterOut(_Out):
    """One dead-letter message."""

    pool: str
    message_id: str
    failure_class: str
    reason: str
    keys: list[str]


class RedriveRequest(BaseModel):
    """Redrive a pool's dead letters: all, one class, or one message."""

    model_config = ConfigDict(extra="forbid")

    pool: str
    failure_class: FailureClass | None = None
    message_id: str | None = None


class RedriveResult(_Out):
    """What a redrive moved."""

    pool: str
    moved: int | str


class UploadRequest(BaseModel):
    """A new upload: the file's name (its last path part is kept)."""

    model_config = ConfigDict(extra="forbid")

    filename: str = Field(min_length=1, max_length=255)
    pools: list[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,30}$")]] | None = Field(
        None,
        min_length=1,
        max_length=32,
        description="The pools to make outputs in; default: the operator's choice "
        "(HEVCQ_API_POOLS), else every pool.",
    )
    size: int | None = Field(
        None,
        ge=1,
        strict=True,  # a number: not "12", not true
        description="The file's size in bytes, if known: the POST then accepts "
        "no more, and only this much counts against the owner's bytes in flight "
        "(otherwise the server's largest upload does).",
    )


class UploadTicket(_Out):
    """A presigned POST: send ``fields`` and then the file as multipart form data to ``url``."""

    id: str
    key: str
    url: str
    fields: dict[str, str]
    max_bytes: int
    expires_at: datetime


class PoolOutcome(_Out):
    """A video's state in one pool, with a download link once done."""

    pool: str
    state: PoolStateName
    reason: str | None = None
    output_bytes: int | None = None
    download_url: str | None = None
    # What a player opens: the file itself, or a ladder's master playlist
    # (``hevcq.web.play``); and the output's poster, where it has one.
    play_url: str | None = None
    poster_url: str | None = None


class VideoStatus(_Out):
    """An upload and its jobs."""

    id: str
    filename: str
    key: str
    created_at: datetime
    state: VideoStateName
    raw_deleted: bool = False
    pools: list[PoolOutcome]


class VideoList(_Out):
    """A page of the caller's uploads, newest first."""

    videos: list[VideoStatus]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next (older) page; null on the last page."
    )


class Health(_Out):
    """Whether the server has a farm to read, and which."""

    status: Literal["ok", "no farm", "farm unreachable"]
    farm: str | None = None
    detail: str | None = None
