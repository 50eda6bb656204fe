"""Every message format on the farm's queues and topics, in one home that the uploading
client, the workers and the API all import: S3 event notifications as they arrive on a
pool queue (raw or SNS-wrapped), and the job results hevcq itself publishes on the events
topic, with the ``Publisher`` that sends them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol
from urllib.parse import unquote_plus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hevcq.errors import FailureClass, PermanentError

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
    # The version of the ffmpeg that decided and encoded the job ("" when not known).
    ffmpeg: str = ""
    # The output's VMAF against its source (a pool with a quality target): the mean, the
    # mean of the worst 1 % of frames, the model (hevcq.media.quality), and the mean of
    # VMAF's NEG model ("no enhancement gain": the score without what sharpening or
    # contrast added, which plain VMAF rewards; far under vmaf says the encoder bought its
    # score that way).
    vmaf: float | None = None
    vmaf_low: float | None = None
    vmaf_model: str | None = None
    vmaf_neg: float | None = None
    # The same for a pool whose target is an XPSNR (luma, dB, pooled as ffmpeg's filter
    # pools it); the vmaf fields then stay empty. Which pair is set says what was measured.
    xpsnr: float | None = None
    xpsnr_low: float | None = None
    # A pool whose CRF is searched for its target (hevcq.media.crfsearch): the CRF chosen,
    # and the score (in the target's metric) and output size its samples predicted
    # (output_bytes is the real size). A per-title ladder: its top rung's CRF, the VMAF its
    # probes predicted for that rung, and the size they predicted for its H.264 video (the
    # rest as made).
    crf: int | None = None
    predicted_vmaf: float | None = None
    predicted_xpsnr: float | None = None
    predicted_bytes: int | None = None
    finished_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class Publisher(Protocol):
    """Where job results go (``hevcq.aws.sns.SnsPublisher``)."""

    def publish(self, result: JobResult) -> None: ...


# --- S3 event notifications, as they arrive on a pool queue ------------------------------


class _Lenient(BaseModel):
    # AWS owns these shapes: accept extra fields, never pin eventVersion.
    model_config = ConfigDict(extra="ignore")


class _S3Object(_Lenient):
    key: str
    size: int | None = None
    eTag: str | None = None
    versionId: str | None = None
    sequencer: str | None = None


class _S3Bucket(_Lenient):
    name: str


class _S3Entity(_Lenient):
    bucket: _S3Bucket
    object: _S3Object


class _Record(_Lenient):
    eventSource: str | None = None
    eventName: str
    s3: _S3Entity


class _Notification(_Lenient):
    Records: list[_Record]


@dataclass(frozen=True, kw_only=True)
class SourceObject:
    """An uploaded object named by an S3 event (key already URL-decoded)."""

    bucket: str
    key: str
    size: int | None
    etag: str
    event_name: str
    sequencer: str = ""
    version_id: str = ""


@dataclass(frozen=True)
class S3TestEvent:
    """The ``s3:S3TestEvent`` S3 sends when notifications are configured: nothing to do."""

    bucket: str


@dataclass(frozen=True)
class IgnoredRecord:
    """A record that starts no job (a deletion, a restore...), with the reason."""

    event_name: str
    key: str
    reason: str


@dataclass(frozen=True)
class Notification:
    """The objects a notification announces, and the records it holds that start nothing."""

    objects: list[SourceObject]
    ignored: list[IgnoredRecord]


ParsedMessage = S3TestEvent | list[SourceObject]
MAX_REASON_CHARS = 300  # a reason quotes the parser's complaint, never the whole body


def _loads(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise PermanentError(f"{what} is not usable JSON: nested too deeply") from exc
    except (ValueError, TypeError) as exc:  # JSONDecodeError is a ValueError
        raise PermanentError(f"{what} is not JSON: {str(exc)[:MAX_REASON_CHARS]}") from exc


def parse_message(body: str) -> ParsedMessage:
    """Turn a queue message body into the objects it announces (see ``parse_records``)."""
    parsed = parse_records(body)
    return parsed if isinstance(parsed, S3TestEvent) else parsed.objects


def parse_records(body: str) -> S3TestEvent | Notification:
    """Turn a queue message body into the objects it announces and the records it ignores.

    Accepts raw S3 notifications (raw message delivery) and SNS envelopes around them.
    Object keys arrive URL-encoded with ``+`` for spaces; they are decoded here. Whatever
    the body holds, the only error raised is ``PermanentError``.
    """
    try:
        return _parse(body)
    except PermanentError:
        raise
    except (RecursionError, MemoryError) as exc:
        raise PermanentError(f"message body is not usable: {type(exc).__name__}") from exc
    except Exception as exc:  # a body we cannot read is the body's fault, whatever the cause
        reason = f"{type(exc).__name__}: {exc}"[:MAX_REASON_CHARS]
        raise PermanentError(f"message body is not usable: {reason}") from exc


def _parse(body: str) -> S3TestEvent | Notification:
    doc = _loads(body, "message body")
    if isinstance(doc, dict) and doc.get("Type") == "Notification" and "Message" in doc:
        doc = _loads(doc["Message"], "SNS Message")
    if not isinstance(doc, dict):
        raise PermanentError("message body is not a JSON object")
    if doc.get("Event") == "s3:TestEvent":
        return S3TestEvent(bucket=str(doc.get("Bucket", "")))
    try:
        note = _Notification.model_validate(doc)
    except ValidationError as exc:
        raise PermanentError(f"not an S3 event notification: {exc.errors()[0]['msg']}") from exc
    objects, ignored = [], []
    for rec in note.Records:
        if not rec.eventName.startswith("ObjectCreated:"):
            reason = "only ObjectCreated events start jobs"
            ignored.append(IgnoredRecord(rec.eventName, unquote_plus(rec.s3.object.key), reason))
            continue
        objects.append(
            SourceObject(
                bucket=rec.s3.bucket.name,
                key=unquote_plus(rec.s3.object.key),
                size=rec.s3.object.size,
                etag=(rec.s3.object.eTag or "").strip('"'),
                event_name=rec.eventName,
                sequencer=rec.s3.object.sequencer or "",
                version_id=rec.s3.object.versionId or "",
            )
        )
    return Notification(objects, ignored)
