"""Messages hevcq itself publishes: job results on the events topic, and the ``Publisher``."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from hevcq.errors import FailureClass

Outcome = Literal["done", "skipped", "failed"]


class JobResult(BaseModel):
    """One (source object, pool) job's final outcome, published to the events topic."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    job_id: str
    pool: str
    bucket: str
    source_key: str
    source_etag: str = ""
    outcome: Outcome
    reason: str | None = None
    failure_class: FailureClass | None = None
    output_key: str | None = None
    output_etag: str | None = None
    # The output is a server-side copy of another pool's identical encode (its key, ETag).
    copied_from: str | None = None
    copied_from_etag: str | None = None
    input_bytes: int | None = None
    output_bytes: int | None = None
    duration_s: float | None = None
    encode_s: float | None = None
    settings_hash: str = ""
    worker: str = ""
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class Publisher(Protocol):
    """Where job results go (``hevcq.aws.sns.SnsPublisher``)."""

    def publish(self, result: JobResult) -> None: ...
